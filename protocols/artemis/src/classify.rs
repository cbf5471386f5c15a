//! What a caller should do with an answer (reference §5 and §8.4).
//!
//! Invariants: only code `0` is [`Class::Ok`]; a code this table does not know is
//! [`Class::Unknown`] (retry with a bound), never a success and never a panic; an answer that may
//! have been executed although it failed is [`Class::OutcomeUnknown`], so the caller re-reads
//! state before it repeats a write.

use crate::envelope::Code;

/// The classes of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Ok,
    /// Code 128: on a lookup, "no such person"; on a write, a permanent error.
    NotFound,
    /// The request cannot succeed as it is (bad parameters, no permission): fix and retry by hand.
    Permanent,
    /// Code 8: this server does not have the endpoint; use a fallback if there is one.
    Unsupported,
    /// Key, signature or partner problems: configuration or clock.
    Auth,
    /// Not executed; safe to repeat after a backoff.
    Retryable,
    /// May or may not have been executed: re-read before repeating a write.
    OutcomeUnknown,
    /// Code 5, HikCentral's database is full or failing: long backoff and a circuit breaker.
    DbFull,
    /// The gateway's call limits: honour Retry-After, back off.
    RateLimited,
    /// A code not in the tables (or code 1): retry a bounded number of times.
    Unknown,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Ok => "ok",
            Class::NotFound => "not_found",
            Class::Permanent => "permanent",
            Class::Unsupported => "unsupported",
            Class::Auth => "auth",
            Class::Retryable => "retryable",
            Class::OutcomeUnknown => "outcome_unknown",
            Class::DbFull => "db_full",
            Class::RateLimited => "rate_limited",
            Class::Unknown => "unknown",
        }
    }

    /// Whether repeating the same request later may succeed.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Class::Retryable
                | Class::OutcomeUnknown
                | Class::DbFull
                | Class::RateLimited
                | Class::Unknown
        )
    }
}

/// Classifies a business or gateway code.
pub fn classify_code(code: &Code) -> Class {
    if code.as_str().starts_with("0x") {
        return match code.number() {
            Some(n) => classify_gateway(n),
            None => Class::Unknown,
        };
    }
    match code.as_str() {
        "0" => Class::Ok,
        "1" => Class::Unknown,
        "2" | "17" => Class::Permanent,
        "5" => Class::DbFull,
        "8" => Class::Unsupported,
        "9" | "13" | "64" => Class::Auth,
        "128" => Class::NotFound,
        _ => Class::Unknown,
    }
}

fn classify_gateway(code: u64) -> Class {
    match code {
        0x0240_0001 | 0x0240_0004 => Class::Retryable,
        0x0240_1000..=0x0240_1003 => Class::Auth,
        0x0240_1004..=0x0240_1008 => Class::Auth,
        0x0240_100b | 0x0240_1036 | 0x0240_103b => Class::RateLimited,
        0x0240_101b..=0x0240_101d => Class::Permanent,
        0x0240_1021 | 0x0240_1023 => Class::Permanent,
        0x0240_1022 => Class::OutcomeUnknown,
        0x0240_1031 | 0x0240_1033 | 0x0240_1035 | 0x0240_1037 => Class::OutcomeUnknown,
        0x0240_1030..=0x0240_1038 => Class::Retryable,
        0x0240_103a | 0x0240_103c => Class::Permanent,
        0x0007_2001..=0x0007_2006 => Class::Permanent,
        0x0007_2201..=0x0007_2204 => Class::Permanent,
        0x0005_2103 => Class::OutcomeUnknown,
        0x0005_2101..=0x0005_2104 => Class::Retryable,
        0x0005_2301 => Class::Unknown,
        _ => Class::Unknown,
    }
}

/// Classifies an HTTP status that came without a usable envelope.
pub fn classify_http(status: u16) -> Class {
    match status {
        200..=299 => Class::Ok,
        401 | 403 => Class::Auth,
        404 => Class::Unsupported,
        408 => Class::OutcomeUnknown,
        429 => Class::RateLimited,
        // 503 says the service did not take the request; the others may come after execution.
        503 => Class::Retryable,
        500..=599 => Class::OutcomeUnknown,
        _ => Class::Permanent,
    }
}
