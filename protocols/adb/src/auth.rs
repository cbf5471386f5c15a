//! ADB authentication: RSA keys in Android's public-key format and token signatures.
//!
//! The device sends a 20-byte token; the host signs it with RSASSA-PKCS1-v1_5 over a SHA-1
//! DigestInfo whose digest *is* the token (adbd verifies with `RSA_verify(NID_sha1, token, ...)`);
//! if the device does not know the key, the host sends its public key:
//! `base64(struct { u32 words; u32 n0inv; u8 n[256]; u8 rr[256]; u32 e }) + " name\0"`, all
//! little-endian, `rr = 2^4096 mod n`, `n0inv = -n^-1 mod 2^32`.
//!
//! Invariants: parsing a public key from the wire never panics; only 2048-bit keys are accepted.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};

/// Key size ADB uses.
pub const KEY_BITS: usize = 2048;
const WORDS: usize = KEY_BITS / 32;
/// Token size.
pub const TOKEN_BYTES: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("RSA: {0}")]
    Rsa(#[from] rsa::Error),
    #[error("public key blob: {0}")]
    BadPublicKey(String),
    #[error("key file: {0}")]
    KeyFile(String),
}

fn padding() -> Pkcs1v15Sign {
    Pkcs1v15Sign::new::<sha1::Sha1>()
}

/// Signs a device's token.
pub fn sign_token(key: &RsaPrivateKey, token: &[u8]) -> Result<Vec<u8>, AuthError> {
    Ok(key.sign(padding(), token)?)
}

/// Whether `signature` is `key`'s signature of `token`.
pub fn verify_token(key: &RsaPublicKey, token: &[u8], signature: &[u8]) -> bool {
    key.verify(padding(), token, signature).is_ok()
}

fn le_bytes(value: &BigUint, len: usize) -> Vec<u8> {
    let mut bytes = value.to_bytes_le();
    bytes.resize(len, 0);
    bytes
}

/// The public key in Android's format, base64, followed by ` name` (no NUL; add it on the wire).
pub fn android_public_key(key: &RsaPublicKey, name: &str) -> Result<String, AuthError> {
    let n = key.n();
    if n.bits() != KEY_BITS {
        return Err(AuthError::BadPublicKey(format!(
            "{} bits; ADB uses {KEY_BITS}",
            n.bits()
        )));
    }
    let n_le = le_bytes(n, KEY_BITS / 8);
    let n0 = u32::from_le_bytes([n_le[0], n_le[1], n_le[2], n_le[3]]);
    // Newton's iteration for the inverse of n0 modulo 2^32 (n0 is odd).
    let mut inverse: u32 = 1;
    for _ in 0..5 {
        inverse = inverse.wrapping_mul(2u32.wrapping_sub(n0.wrapping_mul(inverse)));
    }
    let n0inv = inverse.wrapping_neg();
    let rr = (BigUint::from(1u8) << (2 * KEY_BITS)) % n;
    let e_bytes = le_bytes(key.e(), 4);
    let e = u32::from_le_bytes([e_bytes[0], e_bytes[1], e_bytes[2], e_bytes[3]]);
    let mut blob = Vec::with_capacity(4 + 4 + 256 + 256 + 4);
    blob.extend_from_slice(&(WORDS as u32).to_le_bytes());
    blob.extend_from_slice(&n0inv.to_le_bytes());
    blob.extend_from_slice(&n_le);
    blob.extend_from_slice(&le_bytes(&rr, KEY_BITS / 8));
    blob.extend_from_slice(&e.to_le_bytes());
    Ok(format!("{} {name}", STANDARD.encode(blob)))
}

/// Parses an AUTH RSAPUBLICKEY payload (or an `adbkey.pub` line): base64 blob, optional name.
pub fn parse_android_public_key(payload: &[u8]) -> Result<(RsaPublicKey, String), AuthError> {
    let text = String::from_utf8_lossy(payload);
    let text = text.trim_end_matches(['\0', '\n', '\r']);
    let (encoded, name) = text.split_once(' ').unwrap_or((text, ""));
    let blob = STANDARD
        .decode(encoded.trim())
        .map_err(|e| AuthError::BadPublicKey(format!("not base64: {e}")))?;
    let expected = 4 + 4 + KEY_BITS / 8 * 2 + 4;
    if blob.len() != expected {
        return Err(AuthError::BadPublicKey(format!(
            "{} bytes, expected {expected}",
            blob.len()
        )));
    }
    let words = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]);
    if words as usize != WORDS {
        return Err(AuthError::BadPublicKey(format!(
            "{words} words, expected {WORDS}"
        )));
    }
    let n = BigUint::from_bytes_le(&blob[8..8 + KEY_BITS / 8]);
    let e_at = 8 + KEY_BITS / 8 * 2;
    let e = u32::from_le_bytes([blob[e_at], blob[e_at + 1], blob[e_at + 2], blob[e_at + 3]]);
    let key = RsaPublicKey::new(n, BigUint::from(e))?;
    Ok((key, name.to_owned()))
}

/// Generates a new ADB key.
pub fn generate_key() -> Result<RsaPrivateKey, AuthError> {
    let mut rng = rand_core_06::OsRng;
    Ok(RsaPrivateKey::new(&mut rng, KEY_BITS)?)
}

/// Reads a PKCS#8 (`BEGIN PRIVATE KEY`, as `adb` writes `~/.android/adbkey`) or PKCS#1 PEM key.
pub fn key_from_pem(pem: &str) -> Result<RsaPrivateKey, AuthError> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|e| AuthError::KeyFile(e.to_string()))
}

/// The key as PKCS#8 PEM.
pub fn key_to_pem(key: &RsaPrivateKey) -> Result<String, AuthError> {
    use rsa::pkcs8::EncodePrivateKey;
    key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|e| AuthError::KeyFile(e.to_string()))
}
