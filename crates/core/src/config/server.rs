//! `server:` where the HTTP API listens and how it treats its clients.

use serde::{Deserialize, Serialize};

use crate::units::{ByteSize, HumanDuration};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// Base of the image URLs handed to clients; empty: `http://<host>:<port>`.
    pub public_url: String,
    pub max_body_bytes: ByteSize,
    /// How long SIGTERM waits for running work before killing what is left.
    pub shutdown_grace: HumanDuration,
    /// A client's request headers must arrive within this, and its body may not pause
    /// longer: a slow or stalled client cannot hold a connection open for ever.
    pub client_timeout: HumanDuration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 8000,
            public_url: String::new(),
            max_body_bytes: ByteSize::mib(16),
            shutdown_grace: HumanDuration::secs(30),
            client_timeout: HumanDuration::secs(30),
        }
    }
}
