//! The envelope is read as real servers send it, and every answer gets a class.

use outpost_artemis::api::{PersonInfo, endpoint_label, format_time, parse_time};
use outpost_artemis::{Class, Code, Envelope, classify_code, classify_http};
use proptest::prelude::*;

#[test]
fn a_string_code_and_a_string_person_id_are_read() {
    let e = Envelope::parse(br#"{"code":"0","msg":"Success","data":"1150"}"#).expect("parses");
    assert!(e.code.is_ok());
    assert_eq!(e.data_id("personId").as_deref(), Some("1150"));
}

#[test]
fn a_person_id_inside_an_object_is_read_too() {
    let e =
        Envelope::parse(br#"{"code":0,"msg":"Success","data":{"personId":77}}"#).expect("parses");
    assert!(e.code.is_ok());
    assert_eq!(e.data_id("personId").as_deref(), Some("77"));
}

#[test]
fn absent_null_and_empty_data_are_all_no_data() {
    for body in [
        &br#"{"code":"8","msg":"This product version is not supported"}"#[..],
        br#"{"code":"0","msg":"Success","data":null}"#,
        br#"{"code":"0","msg":"Success","data":""}"#,
    ] {
        assert_eq!(Envelope::parse(body).expect("parses").data, None);
    }
}

#[test]
fn an_empty_page_without_list_is_an_empty_page() {
    let e = Envelope::parse(
        br#"{"code":"0","msg":"Success","data":{"total":0,"pageNo":1,"pageSize":2}}"#,
    )
    .expect("parses");
    let page = e.page().expect("a page");
    assert_eq!(page.total, 0);
    assert!(page.list.is_empty());
}

#[test]
fn a_total_given_as_a_string_is_read() {
    let e = Envelope::parse(
        br#"{"code":"0","data":{"total":"2","list":[{"id":"1"},{"personId":"2"}]}}"#,
    )
    .expect("parses");
    let page = e.page().expect("a page");
    assert_eq!(page.total, 2);
    let ids: Vec<_> = page
        .list
        .iter()
        .filter_map(outpost_artemis::api::member_id)
        .collect();
    assert_eq!(ids, vec!["1", "2"]);
}

#[test]
fn hex_codes_are_normalised_and_classified() {
    assert_eq!(Code::new("0X0240100B").as_str(), "0x0240100b");
    assert_eq!(classify_code(&Code::new("0x0240100b")), Class::RateLimited);
    assert_eq!(classify_code(&Code::new("0x02401003")), Class::Auth);
    assert_eq!(
        classify_code(&Code::new("0x02401033")),
        Class::OutcomeUnknown
    );
    assert_eq!(classify_code(&Code::new("0x02401030")), Class::Retryable);
    assert_eq!(classify_code(&Code::new("0x00072001")), Class::Permanent);
    assert_eq!(
        classify_code(&Code::new("0x00052103")),
        Class::OutcomeUnknown
    );
}

#[test]
fn business_codes_are_classified_as_the_reference_tables_say() {
    let cases = [
        ("0", Class::Ok),
        ("1", Class::Unknown),
        ("2", Class::Permanent),
        ("5", Class::DbFull),
        ("8", Class::Unsupported),
        ("17", Class::Permanent),
        ("64", Class::Auth),
        ("128", Class::NotFound),
        ("4242", Class::Unknown),
        ("0xzz", Class::Unknown),
    ];
    for (code, class) in cases {
        assert_eq!(classify_code(&Code::new(code)), class, "code {code}");
    }
}

#[test]
fn http_statuses_without_an_envelope_are_classified() {
    assert_eq!(classify_http(429), Class::RateLimited);
    assert_eq!(classify_http(503), Class::Retryable);
    assert_eq!(classify_http(500), Class::OutcomeUnknown);
    assert_eq!(classify_http(502), Class::OutcomeUnknown);
    assert_eq!(classify_http(401), Class::Auth);
    assert_eq!(classify_http(404), Class::Unsupported);
}

#[test]
fn non_json_and_codeless_answers_are_errors_not_panics() {
    assert!(Envelope::parse(b"<html>502</html>").is_err());
    assert!(Envelope::parse(br#"{"msg":"no code"}"#).is_err());
    assert!(Envelope::parse(br#"[1,2]"#).is_err());
}

#[test]
fn times_go_out_with_a_colon_offset_and_are_compared_as_instants() {
    let t = parse_time("2025-01-01T09:00:00Z").expect("parses");
    assert_eq!(format_time(t), "2025-01-01T09:00:00+00:00");
    let echoed = parse_time("2025-01-01T03:00:00-06:00").expect("parses");
    assert_eq!(echoed, t);
}

#[test]
fn a_person_without_status_has_an_unknown_status() {
    let v = serde_json::json!({"personId":"1","personCode":"V1","beginTime":"2025-01-01T09:00:00+08:00",
        "endTime":"2025-01-01T18:00:00+08:00","personPhoto":{"picUri":""}});
    let p = PersonInfo::from_value(&v).expect("a person");
    assert_eq!(p.status, None);
    assert_eq!(p.pic_uri, None);
    assert!(p.begin.is_some() && p.end.is_some());
}

#[test]
fn endpoint_labels_drop_the_gateway_prefix_and_module() {
    assert_eq!(
        endpoint_label("/artemis/api/resource/v1/person/single/add"),
        "person/single/add"
    );
    assert_eq!(
        endpoint_label("/artemis/api/visitor/v1/auth/reapplication"),
        "auth/reapplication"
    );
}

proptest! {
    #[test]
    fn any_bytes_parse_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(e) = Envelope::parse(&bytes) {
            let _ = classify_code(&e.code);
            let _ = e.page();
            let _ = e.data_id("personId");
        }
    }

    #[test]
    fn any_json_envelope_shape_parses_or_fails_cleanly(
        code in prop_oneof![Just(serde_json::json!("0")), any::<i64>().prop_map(|n| serde_json::json!(n)), "[0-9a-fx]{0,12}".prop_map(|s| serde_json::json!(s)), Just(serde_json::Value::Null)],
        total in prop_oneof![any::<u32>().prop_map(|n| serde_json::json!(n)), "[0-9a-z]{0,5}".prop_map(|s| serde_json::json!(s))],
        with_list in any::<bool>(),
    ) {
        let mut data = serde_json::json!({"total": total});
        if with_list { data["list"] = serde_json::json!([{"id": "1"}]); }
        let body = serde_json::json!({"code": code, "msg": "m", "data": data}).to_string();
        if let Ok(e) = Envelope::parse(body.as_bytes()) {
            let page = e.page().expect("an object with total is a page");
            prop_assert_eq!(page.list.len(), usize::from(with_list));
        }
    }

    #[test]
    fn a_signature_changes_when_any_signed_part_changes(path in "/artemis/api/[a-z/]{1,30}", other in "/artemis/api/[a-z/]{1,30}") {
        let a = outpost_artemis::sign_json_post("k", "s", &path, "*/*", outpost_artemis::SignedForm::KeyNonceTimestamp, 1, "n");
        let b = outpost_artemis::sign_json_post("k", "s", &other, "*/*", outpost_artemis::SignedForm::KeyNonceTimestamp, 1, "n");
        prop_assert_eq!(path == other, a.signature == b.signature);
    }
}
