//! The Artemis response envelope, read leniently (reference §3): `{"code", "msg", "data"}` where
//! `code` is a string or a number (decimal or `0x...` hex), `data` is absent, null, `""`, a string
//! or an object, and a page's `list` is absent when it is empty.
//!
//! Invariants: [`Envelope::parse`] never panics and accepts any JSON object with a `code`; the
//! gateway may announce `application/xml` and still send JSON, so the content type is ignored.

use serde_json::Value;

/// A response code, normalised: numbers as decimal strings, hex codes lower-case with `0x`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(String);

impl Code {
    pub fn new(raw: &str) -> Self {
        let trimmed = raw.trim();
        match trimmed
            .strip_prefix("0x")
            .or_else(|| trimmed.strip_prefix("0X"))
        {
            Some(hex) => Code(format!("0x{}", hex.to_ascii_lowercase())),
            None => Code(trimmed.to_owned()),
        }
    }

    pub fn ok() -> Self {
        Code("0".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_ok(&self) -> bool {
        self.0 == "0"
    }

    /// The code as a number, if it is one (decimal or hex).
    pub fn number(&self) -> Option<u64> {
        match self.0.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => self.0.parse().ok(),
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("the answer is not JSON: {0}")]
    NotJson(String),
    #[error("the answer is JSON but not an object with a code: {0}")]
    NoCode(String),
    #[error("the answer's data is not what {what} returns: {detail}")]
    UnexpectedData { what: &'static str, detail: String },
}

/// One decoded answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub code: Code,
    pub msg: String,
    /// `None` when `data` was absent, null or `""`.
    pub data: Option<Value>,
}

fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(120)]);
    text.into_owned()
}

impl Envelope {
    pub fn parse(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
        let Value::Object(mut object) = value else {
            return Err(EnvelopeError::NoCode(excerpt(bytes)));
        };
        let code = match object.remove("code") {
            Some(Value::String(s)) => Code::new(&s),
            Some(Value::Number(n)) => Code::new(&n.to_string()),
            _ => return Err(EnvelopeError::NoCode(excerpt(bytes))),
        };
        let msg = match object.remove("msg") {
            Some(Value::String(s)) => s,
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let data = match object.remove("data") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(other) => Some(other),
        };
        Ok(Envelope { code, msg, data })
    }

    /// An id carried as `data` (a string, a number, or an object with `id_field`), as
    /// `person/single/add` answers.
    pub fn data_id(&self, id_field: &str) -> Option<String> {
        match &self.data {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Object(o)) => o.get(id_field).and_then(value_string),
            _ => None,
        }
    }

    /// `data` as a page of records.
    pub fn page(&self) -> Result<Page, EnvelopeError> {
        Page::from_data(self.data.as_ref())
    }
}

/// A string or a number as a string; anything else is `None`.
pub fn value_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A page of a list endpoint: `total` may be a number or a string, `list` may be absent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    pub total: u64,
    pub list: Vec<Value>,
}

impl Page {
    pub fn from_data(data: Option<&Value>) -> Result<Self, EnvelopeError> {
        let Some(data) = data else {
            return Ok(Page::default());
        };
        let Value::Object(object) = data else {
            return Err(EnvelopeError::UnexpectedData {
                what: "a list endpoint",
                detail: "data is not an object".into(),
            });
        };
        let total = object
            .get("total")
            .and_then(value_string)
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let list = match object.get("list") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            Some(_) => {
                return Err(EnvelopeError::UnexpectedData {
                    what: "a list endpoint",
                    detail: "list is not an array".into(),
                });
            }
        };
        Ok(Page { total, list })
    }
}
