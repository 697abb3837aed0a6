//! How runbox talks to the agent in a container: frames over the Docker attach stream
//! (`stdio`) or over HTTP to a port published on loopback (`http`). Both carry the same
//! messages (docs/agent-protocol.md); this module hides which one a sandbox uses.

mod http;
mod messages;
mod stdio;

use std::time::Duration;

pub(crate) use self::http::HttpConnection;
pub(crate) use self::messages::{EventForwarder, ExecEnd};
pub(crate) use self::stdio::StdioConnection;
use crate::protocol::ExecMessage;
use crate::SandboxError;

pub(crate) enum Connection {
    Stdio(StdioConnection),
    Http(HttpConnection),
}

impl Connection {
    /// Waits for the agent's `ready` message; returns the modules it preloaded.
    pub async fn wait_ready(&mut self, within: Duration) -> Result<Vec<String>, SandboxError> {
        match self {
            Connection::Stdio(conn) => conn.wait_ready(within).await,
            Connection::Http(conn) => conn.wait_ready(within).await,
        }
    }

    pub async fn exec(
        &mut self,
        message: &ExecMessage<'_>,
        events: &mut EventForwarder<'_>,
    ) -> Result<ExecEnd, SandboxError> {
        match self {
            Connection::Stdio(conn) => conn.exec(message, events).await,
            Connection::Http(conn) => conn.exec(message, events).await,
        }
    }

    /// Whether the agent answers a ping within `within`.
    pub async fn ping(&mut self, within: Duration) -> bool {
        match self {
            Connection::Stdio(conn) => conn.ping(within).await,
            Connection::Http(conn) => conn.ping(within).await,
        }
    }

    /// False once the transport has seen the agent go away. Cheap; no round trip.
    pub fn seems_alive(&self) -> bool {
        match self {
            Connection::Stdio(conn) => conn.seems_alive(),
            Connection::Http(conn) => conn.seems_alive(),
        }
    }

    /// Whatever the agent wrote to its own stderr lately, for error messages.
    pub fn diagnostics(&self) -> String {
        match self {
            Connection::Stdio(conn) => conn.diagnostics(),
            Connection::Http(_) => String::new(),
        }
    }
}
