//! `auth:` the static tokens, their scopes, and the JWT secret.

use serde::{Deserialize, Serialize};

pub const ALL_SCOPES: [&str; 5] = ["run", "functions:read", "functions:write", "tasks", "admin"];
/// What a static token may do when its entry lists no scopes.
pub const DEFAULT_STATIC_SCOPES: [&str; 4] = ["run", "functions:read", "functions:write", "tasks"];

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub tokens: Vec<StaticToken>,
    /// HS256 secret for JWTs; empty: `RUNBOX_JWT_SECRET`, else a secret generated once
    /// into `<data_dir>/jwt-secret`.
    pub jwt_secret: String,
}

/// A static token: either a bare string or `{token, subject, scopes}`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum StaticToken {
    Bare(String),
    Entry(StaticTokenEntry),
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticTokenEntry {
    pub token: String,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// The isolation tier (or OCI runtime) every run of this token gets at least.
    #[serde(default)]
    pub isolation: Option<String>,
}

impl StaticToken {
    pub fn token(&self) -> &str {
        match self {
            StaticToken::Bare(token) => token,
            StaticToken::Entry(entry) => &entry.token,
        }
    }

    /// The subject a request authenticated by this token acts as.
    pub fn subject(&self) -> String {
        match self {
            StaticToken::Entry(StaticTokenEntry {
                subject: Some(subject),
                ..
            }) => subject.clone(),
            // Never echo the secret itself: name the subject after its position-free hash.
            _ => format!("static:{}", short_fingerprint(self.token())),
        }
    }

    /// The isolation floor of the token's runs, as written (`strong`, `runsc` …).
    pub fn isolation(&self) -> Option<&str> {
        match self {
            StaticToken::Entry(entry) => entry.isolation.as_deref(),
            StaticToken::Bare(_) => None,
        }
    }

    pub fn scopes(&self) -> Vec<String> {
        match self {
            StaticToken::Entry(StaticTokenEntry {
                scopes: Some(scopes),
                ..
            }) => scopes.clone(),
            _ => DEFAULT_STATIC_SCOPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

fn short_fingerprint(text: &str) -> String {
    // FNV-1a: stable, dependency-free, and only used to name a subject.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:08x}", hash >> 32)
}
