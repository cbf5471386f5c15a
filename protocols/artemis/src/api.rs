//! The endpoints and payloads the hub uses (reference §4; all `POST` with a JSON body).
//!
//! Invariants: times go out as ISO-8601 with a colon offset (`2025-01-01T09:00:00+00:00`) and are
//! compared as instants, never as strings; `personIds` for reapplication is a comma-separated
//! string; the face goes to `person/face/update` with `personId` only, never with `personCode`.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use crate::envelope::value_string;

pub const VERSION: &str = "/artemis/api/common/v1/version";
pub const PERSON_ADD: &str = "/artemis/api/resource/v1/person/single/add";
pub const PERSON_DELETE: &str = "/artemis/api/resource/v1/person/single/delete";
pub const PERSON_UPDATE: &str = "/artemis/api/resource/v1/person/single/update";
pub const PERSON_BY_ID: &str = "/artemis/api/resource/v1/person/personId/personInfo";
pub const PERSON_BY_CODE: &str = "/artemis/api/resource/v1/person/personCode/personInfo";
/// Newer servers' search; older ones answer code 8 and [`PERSON_BY_CODE`] is the fallback.
pub const PERSON_SEARCH: &str = "/artemis/api/resource/v1/person/search";
pub const PERSON_LIST: &str = "/artemis/api/resource/v1/person/personList";
pub const PERSON_ADVANCE_LIST: &str = "/artemis/api/resource/v1/person/advance/personList";
pub const FACE_UPDATE: &str = "/artemis/api/resource/v1/person/face/update";
pub const ACCESS_LEVELS: &str = "/artemis/api/acs/v1/privilege/group";
pub const LEVEL_ADD_PERSONS: &str = "/artemis/api/acs/v1/privilege/group/single/addPersons";
pub const LEVEL_DELETE_PERSONS: &str = "/artemis/api/acs/v1/privilege/group/single/deletePersons";
pub const LEVEL_PERSONS: &str = "/artemis/api/acs/v1/privilege/group/single/personList";
pub const REAPPLICATION: &str = "/artemis/api/visitor/v1/auth/reapplication";
pub const ORG_ROOT: &str = "/artemis/api/resource/v1/org/rootOrg";
pub const ORG_LIST: &str = "/artemis/api/resource/v1/org/advance/orgList";

/// The access-control type of an access level (`1`; visitor levels are `2`).
pub const ACCESS_CONTROL_TYPE: u8 = 1;

/// A short name for an endpoint path, for metric labels (`person/single/add`).
pub fn endpoint_label(path: &str) -> &str {
    path.strip_prefix("/artemis/api/")
        .and_then(|rest| rest.split_once('/'))
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(_, rest)| rest)
        .unwrap_or(path)
}

const WIRE_TIME: &[BorrowedFormatItem<'static>] = format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory]:[offset_minute]"
);

/// `2025-01-01T09:00:00+00:00`: whole seconds, colon offset.
pub fn format_time(at: OffsetDateTime) -> String {
    let at = at.replace_nanosecond(0).unwrap_or(at);
    at.format(WIRE_TIME)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// Parses an ISO-8601 / RFC 3339 time as servers echo it.
pub fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .or_else(|| OffsetDateTime::parse(text, WIRE_TIME).ok())
}

/// A person to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPerson {
    pub code: String,
    pub family_name: String,
    pub given_name: String,
    pub org_index_code: String,
    pub begin: OffsetDateTime,
    pub end: OffsetDateTime,
}

impl NewPerson {
    pub fn body(&self) -> Value {
        json!({
            "personCode": self.code,
            "personFamilyName": self.family_name,
            "personGivenName": self.given_name,
            "gender": 0,
            "orgIndexCode": self.org_index_code,
            "beginTime": format_time(self.begin),
            "endTime": format_time(self.end),
        })
    }
}

pub fn by_code_body(code: &str) -> Value {
    json!({ "personCode": code })
}

pub fn search_body(code: &str) -> Value {
    json!({ "personCode": code, "pageNo": 1, "pageSize": 10 })
}

pub fn person_id_body(person_id: &str) -> Value {
    json!({ "personId": person_id })
}

pub fn face_body(person_id: &str, face_base64: &str) -> Value {
    json!({ "personId": person_id, "faceData": face_base64 })
}

pub fn level_members_body(level: &str, person_id: &str) -> Value {
    json!({
        "privilegeGroupId": level,
        "type": ACCESS_CONTROL_TYPE,
        "list": [{ "id": person_id }],
    })
}

pub fn level_list_body(level: &str, page_no: u32, page_size: u32) -> Value {
    json!({
        "privilegeGroupId": level,
        "type": ACCESS_CONTROL_TYPE,
        "pageNo": page_no,
        "pageSize": page_size,
    })
}

pub fn reapplication_body(person_ids: &[&str]) -> Value {
    json!({ "ImmediateDownload": 1, "personIds": person_ids.join(",") })
}

/// What the hub reads of a person (`personInfo` or a search item).
#[derive(Debug, Clone, PartialEq)]
pub struct PersonInfo {
    pub person_id: String,
    pub person_code: Option<String>,
    pub begin: Option<OffsetDateTime>,
    pub end: Option<OffsetDateTime>,
    /// `personPhoto.picUri`, when non-empty.
    pub pic_uri: Option<String>,
    /// Real servers send no `status`: `None` means unknown, not inactive.
    pub status: Option<i64>,
}

impl PersonInfo {
    pub fn from_value(value: &Value) -> Option<Self> {
        let person_id = value.get("personId").and_then(value_string)?;
        let text = |name: &str| value.get(name).and_then(value_string);
        Some(PersonInfo {
            person_id,
            person_code: text("personCode"),
            begin: text("beginTime").as_deref().and_then(parse_time),
            end: text("endTime").as_deref().and_then(parse_time),
            pic_uri: value
                .get("personPhoto")
                .and_then(|p| p.get("picUri"))
                .and_then(value_string)
                .filter(|s| !s.is_empty()),
            status: value.get("status").and_then(|s| match s {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            }),
        })
    }
}

/// The id of an access-level member item (`id` or `personId`).
pub fn member_id(item: &Value) -> Option<String> {
    item.get("id")
        .or_else(|| item.get("personId"))
        .and_then(value_string)
}
