//! API tokens: `mesh_<id>_<secret>`. The id finds the token's row; only an
//! Argon2id hash of the secret (with its own random salt) is stored, so the
//! catalog never holds a usable token.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng;

use crate::error::{PolicyError, Result};

const PREFIX: &str = "mesh_";

/// A token just created: the text to show once, and what to store.
#[derive(Debug)]
pub struct NewToken {
    pub id: String,
    /// The whole token; shown to the user once and never stored.
    pub token: String,
    /// The Argon2id PHC string of the secret.
    pub hash: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh random token and its hash.
pub fn new_token() -> Result<NewToken> {
    let mut rng = rand::rng();
    let id: [u8; 6] = rng.random();
    let secret: [u8; 24] = rng.random();
    let (id, secret) = (hex(&id), hex(&secret));
    let hash = hash_secret(&secret)?;
    Ok(NewToken {
        token: format!("{PREFIX}{id}_{secret}"),
        id,
        hash,
    })
}

/// The Argon2id hash of a secret, salted.
pub fn hash_secret(secret: &str) -> Result<String> {
    let bytes: [u8; 16] = rand::rng().random();
    let salt = SaltString::encode_b64(&bytes).map_err(|e| PolicyError::Token(e.to_string()))?;
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PolicyError::Token(e.to_string()))
}

/// Splits a token into its id and secret, without saying more than "malformed".
pub fn parse_token(token: &str) -> Result<(&str, &str)> {
    token
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once('_'))
        .filter(|(id, secret)| !id.is_empty() && !secret.is_empty())
        .ok_or_else(|| PolicyError::Token("not a Meshwork token (mesh_<id>_<secret>)".into()))
}

/// Whether a secret matches a stored hash.
pub fn verify_secret(secret: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(secret.as_bytes(), &h)
            .is_ok()
    })
}

/// A fast digest of a secret, for remembering in memory that it matched
/// its Argon2 hash (the slow check runs once per process and token).
pub fn secret_digest(secret: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(secret.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_against_its_hash_only() {
        let t = new_token().unwrap();
        let (id, secret) = parse_token(&t.token).unwrap();
        assert_eq!(id, t.id);
        assert!(verify_secret(secret, &t.hash));
        assert!(!verify_secret("0000", &t.hash));
        assert!(
            !t.hash.contains(secret),
            "the hash must not hold the secret"
        );
        let other = new_token().unwrap();
        assert_ne!(other.token, t.token);
        assert!(parse_token("bearer abc").is_err());
        assert!(parse_token("mesh_abc").is_err());
    }
}
