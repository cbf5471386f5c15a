//! What the simulated HikCentral stores and how each endpoint answers (reference §4, §9.2), with
//! the version quirks of its profile and the faults it was told to inject (§9.3).
//!
//! Invariants: a `personCode` names at most one person; a person's face is kept as its SHA-256;
//! a deleted person leaves every access level; every request, refused or not, is recorded with
//! whether it changed anything (`committed`), so tests can count creations per code.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Which HikCentral the simulator pretends to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// HCP 3.x: `/person/search` exists and personInfo carries `status`.
    #[default]
    Current,
    /// HCP 2.4: no `/person/search` (code 8), no `status` in personInfo.
    Old,
}

/// Faults to inject, set with `POST /__sim/faults` (rates are per request, 0.0–1.0).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Writes answer code 5 without committing until this is cleared.
    pub db_full: bool,
    /// Added to every Artemis request.
    pub latency_ms: u64,
    /// Rate of HTTP errors answered before anything is committed.
    pub http_error_rate: f64,
    /// The status of those errors (500, 502, 503 or 429; 429 carries `Retry-After: 1`).
    pub http_error_status: Option<u16>,
    /// Rate of requests that are executed and then lose their connection without an answer.
    pub commit_then_drop_rate: f64,
    /// Rate of requests whose connection is dropped before anything is executed.
    pub drop_before_commit_rate: f64,
    /// Rate of reapplications answered `code 1, Unknow Error(0, 3651)` (not applied).
    pub reapply_unknown_rate: f64,
}

/// One request as the simulator saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Call {
    pub seq: u64,
    pub at_ms: i64,
    pub method: String,
    pub path: String,
    pub signed_headers: Vec<String>,
    /// The JSON body, `faceData` replaced by its length and SHA-256.
    pub body: Value,
    pub http_status: u16,
    /// The envelope code answered, or `None` when the connection was dropped.
    pub code: Option<String>,
    pub committed: bool,
    pub fault: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Person {
    pub id: u64,
    pub code: String,
    pub family_name: String,
    pub given_name: String,
    pub org: String,
    pub begin: Option<String>,
    pub end: Option<String>,
    pub face_sha256: Option<String>,
    /// Whether the last change to this person was applied to devices.
    pub applied: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Level {
    pub id: String,
    pub name: String,
    pub kind: u8,
    pub members: BTreeSet<u64>,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// HTTP status, extra headers, body.
    Respond(u16, Vec<(&'static str, String)>, Vec<u8>),
    /// Close the connection without answering.
    Drop,
}

/// The simulator's whole state.
pub struct SimState {
    pub profile: Profile,
    pub faults: Faults,
    pub persons: BTreeMap<u64, Person>,
    by_code: HashMap<String, u64>,
    next_id: u64,
    pub levels: BTreeMap<String, Level>,
    pub calls: Vec<Call>,
    rng: StdRng,
}

impl std::fmt::Debug for SimState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimState")
            .field("persons", &self.persons.len())
            .field("calls", &self.calls.len())
            .finish_non_exhaustive()
    }
}

/// The access levels every simulator starts with.
pub const LEVELS: &[(&str, &str)] = &[
    ("1", "All doors"),
    ("2", "Lobby"),
    ("3", "Floor 3 offices"),
    ("7", "Visitors"),
];

const ROOT_ORG: &str = "1";

enum Outcome {
    /// Envelope code, message, data (`None` sends `"data": null`), whether state changed.
    Envelope(&'static str, String, Value, bool),
    Unsupported,
}

fn ok(data: Value, committed: bool) -> Outcome {
    Outcome::Envelope("0", "Success".into(), data, committed)
}

fn err(code: &'static str, msg: impl Into<String>) -> Outcome {
    Outcome::Envelope(code, msg.into(), Value::Null, false)
}

fn not_found() -> Outcome {
    err("128", "The request resource does not exist")
}

fn text(body: &Value, name: &str) -> Option<String> {
    match body.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn page(items: Vec<Value>, body: &Value) -> Value {
    let page_no = body
        .get("pageNo")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .max(1);
    let page_size = body
        .get("pageSize")
        .and_then(Value::as_u64)
        .unwrap_or(20)
        .clamp(1, 500);
    let total = items.len();
    let list: Vec<Value> = items
        .into_iter()
        .skip(((page_no - 1) * page_size) as usize)
        .take(page_size as usize)
        .collect();
    let mut data = json!({ "total": total, "pageNo": page_no, "pageSize": page_size });
    // Real servers omit `list` when there is nothing in it.
    if !list.is_empty() {
        data["list"] = Value::Array(list);
    }
    data
}

fn valid_time(text: &str) -> bool {
    outpost_artemis::api::parse_time(text).is_some()
}

/// Whether a path changes state (what code 5 refuses while the database is full).
fn is_write(path: &str) -> bool {
    [
        "/single/add",
        "/single/update",
        "/single/delete",
        "/face/update",
        "/addPersons",
        "/deletePersons",
        "/auth/reapplication",
    ]
    .iter()
    .any(|w| path.ends_with(w))
}

impl SimState {
    pub fn new(profile: Profile, seed: u64) -> Self {
        let levels = LEVELS
            .iter()
            .map(|(id, name)| {
                (
                    (*id).to_owned(),
                    Level {
                        id: (*id).to_owned(),
                        name: (*name).to_owned(),
                        kind: 1,
                        members: BTreeSet::new(),
                    },
                )
            })
            .collect();
        SimState {
            profile,
            faults: Faults::default(),
            persons: BTreeMap::new(),
            by_code: HashMap::new(),
            next_id: 1000,
            levels,
            calls: Vec::new(),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn draw(&mut self, rate: f64) -> bool {
        rate > 0.0 && self.rng.random::<f64>() < rate
    }

    /// Answers an Artemis request whose signature was already verified.
    pub fn handle(
        &mut self,
        method: &str,
        path: &str,
        signed_headers: Vec<String>,
        body_bytes: &[u8],
        now_ms: i64,
    ) -> Answer {
        let body: Value = serde_json::from_slice(body_bytes).unwrap_or(Value::Null);
        let mut call = Call {
            seq: self.calls.len() as u64 + 1,
            at_ms: now_ms,
            method: method.to_owned(),
            path: path.to_owned(),
            signed_headers,
            body: redact(&body),
            http_status: 200,
            code: None,
            committed: false,
            fault: None,
        };
        let answer = self.answer(path, body_bytes, &body, &mut call);
        self.calls.push(call);
        answer
    }

    fn answer(&mut self, path: &str, bytes: &[u8], body: &Value, call: &mut Call) -> Answer {
        if self.draw(self.faults.http_error_rate) {
            let status = self.faults.http_error_status.unwrap_or(500);
            call.http_status = status;
            call.fault = Some(format!("http {status}"));
            let headers = if status == 429 {
                vec![("retry-after", "1".to_owned())]
            } else {
                vec![]
            };
            let body = json!({"code": "0x02401030", "msg": "backend service unavailable"});
            return Answer::Respond(status, headers, body.to_string().into_bytes());
        }
        if self.draw(self.faults.drop_before_commit_rate) {
            call.fault = Some("drop before commit".into());
            return Answer::Drop;
        }
        let outcome = if !body.is_object() && !bytes.is_empty() {
            err("0x02401021", "request JSON parse error")
        } else if self.faults.db_full && is_write(path) {
            call.fault = Some("db full".into());
            err("5", "Service exception. Hikcentral Database Exception")
        } else if path.ends_with("/auth/reapplication")
            && self.draw(self.faults.reapply_unknown_rate)
        {
            call.fault = Some("reapplication unknown error".into());
            err("1", "Unknow Error(0, 3651)")
        } else {
            self.dispatch(path, body)
        };
        let drop_after = self.draw(self.faults.commit_then_drop_rate);
        match outcome {
            Outcome::Unsupported => {
                call.code = Some("8".into());
                let body = json!({"code": "8", "msg": "This product version is not supported"});
                Answer::Respond(200, vec![], body.to_string().into_bytes())
            }
            Outcome::Envelope(code, msg, data, committed) => {
                call.committed = committed;
                if drop_after {
                    call.fault = Some("commit then drop".into());
                    return Answer::Drop;
                }
                call.code = Some(code.to_owned());
                let body = json!({"code": code, "msg": msg, "data": data});
                Answer::Respond(200, vec![], body.to_string().into_bytes())
            }
        }
    }

    fn person_json(&self, p: &Person) -> Value {
        let mut v = json!({
            "personId": p.id.to_string(),
            "personCode": p.code,
            "personName": format!("{} {}", p.given_name, p.family_name),
            "personFamilyName": p.family_name,
            "personGivenName": p.given_name,
            "gender": 0,
            "orgIndexCode": p.org,
            "personPhoto": { "picUri": p.face_sha256.as_ref().map(|s| format!("/pic?{}", &s[..16])).unwrap_or_default() },
            "phoneNo": "",
            "email": "",
            "remark": "",
        });
        // A person without a validity window has no times (an empty string is not a time).
        if let (Some(begin), Some(end)) = (&p.begin, &p.end) {
            v["beginTime"] = json!(begin);
            v["endTime"] = json!(end);
        }
        if self.profile == Profile::Current {
            v["status"] = json!(1);
        }
        v
    }

    fn dispatch(&mut self, path: &str, body: &Value) -> Outcome {
        let Some(endpoint) = path.strip_prefix("/artemis/api/") else {
            return Outcome::Unsupported;
        };
        match endpoint {
            "common/v1/version" => ok(
                json!({
                    "produceName": "HikCentral Professional",
                    "softVersion": match self.profile { Profile::Current => "V3.1.0 build20240101", Profile::Old => "V2.4.1 build20220301" },
                }),
                false,
            ),
            "resource/v1/org/rootOrg" => ok(root_org(), false),
            "resource/v1/org/advance/orgList" | "resource/v1/org/orgList" => {
                ok(page(vec![root_org()], body), false)
            }
            "resource/v1/person/single/add" => self.add_person(body),
            "resource/v1/person/single/update" => self.update_person(body),
            "resource/v1/person/single/delete" => {
                let Some(id) = text(body, "personId").and_then(|s| s.parse::<u64>().ok()) else {
                    return err("2", "Incorrect request parameter [personId]");
                };
                match self.persons.remove(&id) {
                    Some(p) => {
                        self.by_code.remove(&p.code);
                        for level in self.levels.values_mut() {
                            level.members.remove(&id);
                        }
                        ok(Value::String(String::new()), true)
                    }
                    None => not_found(),
                }
            }
            "resource/v1/person/personId/personInfo" => {
                match text(body, "personId")
                    .and_then(|s| s.parse::<u64>().ok())
                    .and_then(|id| self.persons.get(&id))
                {
                    Some(p) => ok(self.person_json(p), false),
                    None => not_found(),
                }
            }
            "resource/v1/person/personCode/personInfo" => {
                match text(body, "personCode")
                    .and_then(|c| self.by_code.get(&c))
                    .and_then(|id| self.persons.get(id))
                {
                    Some(p) => ok(self.person_json(p), false),
                    None => not_found(),
                }
            }
            "resource/v1/person/search" if self.profile == Profile::Old => Outcome::Unsupported,
            "resource/v1/person/search"
            | "resource/v1/person/advance/personList"
            | "resource/v1/person/personList" => {
                let code = text(body, "personCode");
                let name = text(body, "personName").map(|n| n.to_lowercase());
                let items = self
                    .persons
                    .values()
                    .filter(|p| code.as_ref().is_none_or(|c| &p.code == c))
                    .filter(|p| {
                        name.as_ref().is_none_or(|n| {
                            format!("{} {}", p.given_name, p.family_name)
                                .to_lowercase()
                                .contains(n.as_str())
                        })
                    })
                    .map(|p| self.person_json(p))
                    .collect();
                ok(page(items, body), false)
            }
            "resource/v1/person/face/update" => self.update_face(body),
            "acs/v1/privilege/group" => {
                let kind = body.get("type").and_then(Value::as_u64).unwrap_or(1) as u8;
                let items = self
                    .levels
                    .values()
                    .filter(|l| l.kind == kind)
                    .map(|l| json!({"privilegeGroupId": l.id, "privilegeGroupName": l.name, "description": "", "type": l.kind}))
                    .collect();
                ok(page(items, body), false)
            }
            "acs/v1/privilege/group/single/addPersons" => self.change_members(body, true),
            "acs/v1/privilege/group/single/deletePersons" => self.change_members(body, false),
            "acs/v1/privilege/group/single/personList" => {
                let Some(level) = text(body, "privilegeGroupId").and_then(|l| self.levels.get(&l))
                else {
                    return not_found();
                };
                let items = level
                    .members
                    .iter()
                    .map(|id| json!({"id": id.to_string()}))
                    .collect();
                ok(page(items, body), false)
            }
            "visitor/v1/auth/reapplication" => {
                let ids = match body.get("personIds") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(_) => return err("2", "Incorrect request parameter [personIds]"),
                };
                let mut changed = false;
                for p in self.persons.values_mut() {
                    let named = ids
                        .as_ref()
                        .is_none_or(|ids| ids.split(',').any(|i| i.trim() == p.id.to_string()));
                    if named && !p.applied {
                        p.applied = true;
                        changed = true;
                    }
                }
                ok(Value::String(String::new()), changed)
            }
            _ => Outcome::Unsupported,
        }
    }

    fn add_person(&mut self, body: &Value) -> Outcome {
        let Some(code) = text(body, "personCode") else {
            return err("2", "Incorrect request parameter [personCode]");
        };
        if code.len() > 16 || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
            return err("2", "Incorrect request parameter [personCode]");
        }
        if self.by_code.contains_key(&code) {
            return err(
                "2",
                "Incorrect request parameter [personCode already exists]",
            );
        }
        let (Some(family_name), Some(given_name)) = (
            text(body, "personFamilyName"),
            text(body, "personGivenName"),
        ) else {
            return err("2", "Incorrect request parameter [personName]");
        };
        let org = text(body, "orgIndexCode").unwrap_or_else(|| ROOT_ORG.into());
        if org != ROOT_ORG {
            return err("2", "Incorrect request parameter [orgIndexCode]");
        }
        let begin = text(body, "beginTime");
        let end = text(body, "endTime");
        if begin.as_deref().is_some_and(|t| !valid_time(t))
            || end.as_deref().is_some_and(|t| !valid_time(t))
        {
            return err("2", "Incorrect request parameter [beginTime/endTime]");
        }
        self.next_id += 1;
        let id = self.next_id;
        self.by_code.insert(code.clone(), id);
        self.persons.insert(
            id,
            Person {
                id,
                code,
                family_name,
                given_name,
                org,
                begin,
                end,
                face_sha256: None,
                applied: false,
            },
        );
        ok(Value::String(id.to_string()), true)
    }

    fn update_person(&mut self, body: &Value) -> Outcome {
        let Some(person) = text(body, "personId")
            .and_then(|s| s.parse::<u64>().ok())
            .and_then(|id| self.persons.get_mut(&id))
        else {
            return not_found();
        };
        for (field, slot) in [
            ("personFamilyName", &mut person.family_name),
            ("personGivenName", &mut person.given_name),
        ] {
            if let Some(v) = text(body, field) {
                *slot = v;
            }
        }
        for (field, slot) in [
            ("beginTime", &mut person.begin),
            ("endTime", &mut person.end),
        ] {
            if let Some(v) = text(body, field) {
                if !valid_time(&v) {
                    return err("2", format!("Incorrect request parameter [{field}]"));
                }
                *slot = Some(v);
            }
        }
        person.applied = false;
        ok(Value::String(String::new()), true)
    }

    fn update_face(&mut self, body: &Value) -> Outcome {
        if body.get("personId").is_some() && body.get("personCode").is_some() {
            return err(
                "2",
                "Incorrect request parameter [personId and personCode can only have one]",
            );
        }
        let Some(id) = text(body, "personId").and_then(|s| s.parse::<u64>().ok()) else {
            return err("2", "Incorrect request parameter [personId]");
        };
        let face = text(body, "faceData").and_then(|f| STANDARD.decode(f).ok());
        let Some(face) = face.filter(|f| f.len() >= 4) else {
            return err(
                "2",
                "Incorrect request parameter [faceData parameter error]",
            );
        };
        let Some(person) = self.persons.get_mut(&id) else {
            return err("128", "person data is invalid");
        };
        person.face_sha256 = Some(hex::encode(Sha256::digest(&face)));
        person.applied = false;
        ok(Value::String(String::new()), true)
    }

    fn change_members(&mut self, body: &Value, add: bool) -> Outcome {
        let Some(level_id) = text(body, "privilegeGroupId") else {
            return err("2", "Incorrect request parameter [privilegeGroupId]");
        };
        let ids: Vec<u64> = match body.get("list") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|i| text(i, "id"))
                .filter_map(|s| s.parse().ok())
                .collect(),
            _ => return err("2", "Incorrect request parameter [list]"),
        };
        if ids.is_empty() || ids.iter().any(|id| !self.persons.contains_key(id)) {
            return err("128", "The request resource does not exist");
        }
        let Some(level) = self.levels.get_mut(&level_id) else {
            return not_found();
        };
        let mut changed = false;
        for id in &ids {
            changed |= if add {
                level.members.insert(*id)
            } else {
                level.members.remove(id)
            };
        }
        for id in &ids {
            if let Some(p) = self.persons.get_mut(id) {
                p.applied = false;
            }
        }
        ok(Value::String(String::new()), changed)
    }

    /// The state as `GET /__sim/state` shows it.
    pub fn snapshot(&self) -> Value {
        let persons: Vec<Value> = self
            .persons
            .values()
            .map(|p| {
                let levels: Vec<&str> = self
                    .levels
                    .values()
                    .filter(|l| l.members.contains(&p.id))
                    .map(|l| l.id.as_str())
                    .collect();
                json!({
                    "personId": p.id.to_string(), "personCode": p.code,
                    "familyName": p.family_name, "givenName": p.given_name,
                    "beginTime": p.begin, "endTime": p.end,
                    "faceSha256": p.face_sha256, "applied": p.applied, "levels": levels,
                })
            })
            .collect();
        json!({
            "profile": self.profile,
            "faults": self.faults,
            "persons": persons,
            "calls": self.calls.len(),
        })
    }
}

fn root_org() -> Value {
    json!({"orgIndexCode": ROOT_ORG, "orgName": "All Persons", "parentOrgIndexCode": "-1"})
}

/// The body as recorded: `faceData` replaced by its length and SHA-256.
fn redact(body: &Value) -> Value {
    let mut body = body.clone();
    if let Some(face) = body.get_mut("faceData")
        && let Value::String(data) = face
    {
        *face = json!({
            "length": data.len(),
            "sha256": hex::encode(Sha256::digest(data.as_bytes())),
        });
    }
    body
}
