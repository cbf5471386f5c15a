//! The signature reproduces the reference vectors (`artemis_vectors.json`, checked against the
//! vendor SDK) and the derived ones below (computed by hand with Python's hmac from the rule).

use outpost_artemis::sign::{Canonical, SignedForm, content_md5, sign_json_post, signature};
use serde_json::Value;

const PATH: &str = "/artemis/api/resource/v1/person/single/add";

fn vectors() -> Value {
    serde_json::from_str(include_str!("artemis_vectors.json")).expect("vectors are JSON")
}

fn field<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str().expect("a string field")
}

fn nonce_and_timestamp(v: &Value) -> (String, i64) {
    (
        field(v, &["x_ca_nonce"]).to_owned(),
        field(v, &["x_ca_timestamp"])
            .parse()
            .expect("numeric timestamp"),
    )
}

#[test]
fn the_vendor_sdk_form_reproduces_vector_v1() {
    let v = vectors();
    let (nonce, ts) = nonce_and_timestamp(&v);
    let signed = sign_json_post(
        field(&v, &["app_key"]),
        field(&v, &["app_secret"]),
        PATH,
        "*/*",
        SignedForm::KeyNonceTimestamp,
        ts,
        &nonce,
    );
    let expected = &v["vectors"]["V1_java_sdk_post_json"];
    assert_eq!(signed.string_to_sign, field(expected, &["string_to_sign"]));
    assert_eq!(signed.signature, field(expected, &["x_ca_signature"]));
    let headers: Vec<&str> = signed
        .headers
        .iter()
        .filter(|(n, _)| n == "x-ca-signature-headers")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(headers, vec![field(expected, &["x_ca_signature_headers"])]);
}

#[test]
fn the_key_only_form_reproduces_vector_v3() {
    let v = vectors();
    let signed = sign_json_post(
        field(&v, &["app_key"]),
        field(&v, &["app_secret"]),
        PATH,
        "application/json",
        SignedForm::KeyOnly,
        0,
        "",
    );
    let expected = &v["vectors"]["V3_minimal_hcp"];
    assert_eq!(signed.string_to_sign, field(expected, &["string_to_sign"]));
    assert_eq!(signed.signature, field(expected, &["x_ca_signature"]));
}

#[test]
fn the_form_without_signed_headers_reproduces_vector_v0_and_sends_no_signature_headers() {
    let v = vectors();
    let signed = sign_json_post(
        field(&v, &["app_key"]),
        field(&v, &["app_secret"]),
        PATH,
        "*/*",
        SignedForm::None,
        0,
        "",
    );
    let expected = &v["vectors"]["V0_no_signed_headers"];
    assert_eq!(signed.string_to_sign, field(expected, &["string_to_sign"]));
    assert_eq!(signed.signature, field(expected, &["x_ca_signature"]));
    assert!(
        signed
            .headers
            .iter()
            .all(|(n, _)| n != "x-ca-signature-headers")
    );
}

#[test]
fn content_md5_is_base64_of_the_binary_digest() {
    let v = vectors();
    assert_eq!(
        content_md5(field(&v, &["body_utf8"]).as_bytes()),
        field(&v, &["content_md5_of_body"])
    );
}

#[test]
fn content_md5_and_date_are_signed_between_accept_and_the_custom_headers() {
    let v = vectors();
    let (nonce, ts) = nonce_and_timestamp(&v);
    let canonical = Canonical {
        method: "post".into(),
        accept: Some("*/*".into()),
        content_md5: Some(content_md5(field(&v, &["body_utf8"]).as_bytes())),
        content_type: Some("application/json".into()),
        date: Some(field(&v, &["date"]).into()),
        // Title-Case names, out of order: what hikvision-openapi-signer sends.
        headers: vec![
            ("X-Ca-Timestamp".into(), ts.to_string()),
            ("X-Ca-Key".into(), "12345678".into()),
            ("X-Ca-Nonce".into(), nonce),
        ],
        path: PATH.into(),
        params: vec![],
    };
    let string_to_sign = canonical.string_to_sign();
    assert_eq!(
        string_to_sign,
        "POST\n*/*\nFct1APRrwWJzh50xnEeohQ==\napplication/json\nTue, 14 Nov 2023 22:13:20 GMT\n\
         x-ca-key:12345678\nx-ca-nonce:2b9f0c6e-8f1a-4c3b-9d2e-7a6b5c4d3e2f\n\
         x-ca-timestamp:1700000000000\n/artemis/api/resource/v1/person/single/add"
    );
    assert_eq!(
        signature(field(&v, &["app_secret"]), &string_to_sign),
        "UuyuDsccK2pGTRTeJ1eSJaIm9Xl6S5qb9CISPbriWE8="
    );
    assert_eq!(
        canonical.signature_headers(),
        "x-ca-key,x-ca-nonce,x-ca-timestamp"
    );
}

#[test]
fn query_parameters_are_signed_raw_sorted_and_a_blank_value_as_the_bare_key() {
    let canonical = Canonical {
        method: "GET".into(),
        accept: Some("application/json".into()),
        headers: vec![("x-ca-key".into(), "12345678".into())],
        path: "/artemis/api/resource/v1/org/advance/orgList".into(),
        params: vec![
            ("pageSize".into(), "10".into()),
            ("orgName".into(), "Head Office".into()),
            ("pageNo".into(), "1".into()),
            ("flag".into(), "".into()),
        ],
        ..Canonical::default()
    };
    let string_to_sign = canonical.string_to_sign();
    assert_eq!(
        string_to_sign,
        "GET\napplication/json\nx-ca-key:12345678\n\
         /artemis/api/resource/v1/org/advance/orgList?flag&orgName=Head Office&pageNo=1&pageSize=10"
    );
    assert_eq!(
        signature("abcdefghijklmnopqrst", &string_to_sign),
        "1lRWF7qZLLkHHUCfo2XQlr2eRPJV26Gv4xlhkzmpSvE="
    );
}

#[test]
fn absent_standard_headers_leave_no_empty_line() {
    let canonical = Canonical {
        method: "POST".into(),
        path: "/artemis/api/common/v1/version".into(),
        ..Canonical::default()
    };
    assert_eq!(
        canonical.string_to_sign(),
        "POST\n/artemis/api/common/v1/version"
    );
}
