//! `outpost-artemis`: the HikCentral Professional OpenAPI ("Artemis" gateway) protocol, sans-IO.
//!
//! What is here: the request signature exactly as the vendor SDK computes it ([`sign`]), the
//! lenient response envelope ([`envelope`]), the classification of every answer into what a
//! caller should do next ([`classify`]) and the endpoints and payloads the hub uses ([`api`]).
//! Facts and vectors: `shared/reference/hikcentral.md` and `artemis_vectors.json`.
//!
//! Invariants: the string-to-sign contains each of Accept, Content-MD5, Content-Type and Date only
//! when that header is sent, the signed `x-ca-*` headers sorted by lower-case name, the path, and
//! the sorted raw query parameters; decoding an answer never panics, whatever the bytes; an answer
//! that cannot be classified is retryable with a bound, never a success.

pub mod api;
pub mod classify;
pub mod envelope;
pub mod sign;

pub use classify::{Class, classify_code, classify_http};
pub use envelope::{Code, Envelope, EnvelopeError, Page};
pub use sign::{Canonical, SignedForm, SignedRequest, content_md5, sign_json_post, signature};
