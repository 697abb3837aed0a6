//! `server:` where the HTTP API listens and how it treats its clients.

use serde::{Deserialize, Serialize};

use crate::units::{ByteSize, HumanDuration};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Base of the image URLs handed to clients; empty: `http://<host>:<port>`.
    #[serde(default)]
    pub public_url: String,
    #[serde(default = "default_max_body")]
    pub max_body_bytes: ByteSize,
    /// How long SIGTERM waits for running work before killing what is left.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: HumanDuration,
    /// A client's request headers must arrive within this, and its body may not pause
    /// longer: a slow or stalled client cannot hold a connection open for ever.
    #[serde(default = "default_client_timeout")]
    pub client_timeout: HumanDuration,
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    8000
}
fn default_max_body() -> ByteSize {
    ByteSize::mib(16)
}
fn default_shutdown_grace() -> HumanDuration {
    HumanDuration::secs(30)
}
fn default_client_timeout() -> HumanDuration {
    HumanDuration::secs(30)
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: default_host(),
            port: default_port(),
            public_url: String::new(),
            max_body_bytes: default_max_body(),
            shutdown_grace: default_shutdown_grace(),
            client_timeout: default_client_timeout(),
        }
    }
}
