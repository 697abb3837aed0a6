//! MCP sessions that say which replica holds them. An MCP session (handshake era) lives
//! in the memory of the replica that answered its `initialize`; its id is
//! `<replica id>.<random>`, so that any replica a load balancer hands the next request
//! to can send it to the one that holds the session (`routes/forward.rs`) with nothing
//! shared but the id. The sessions themselves are rmcp's local ones.

use std::pin::Pin;

use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError,
};
use rmcp::transport::streamable_http_server::session::{
    ServerSseMessage, SessionId, SessionManager,
};

/// Between the replica's id and the local session's in an MCP session id.
const SEPARATOR: char = '.';

/// The replica that holds MCP session `id`, when the id names one.
pub fn holder(id: &str) -> Option<&str> {
    id.split_once(SEPARATOR)
        .map(|(replica, _)| replica)
        .filter(|replica| !replica.is_empty())
}

/// A stream of the local sessions' as one that borrows nothing: their type names the
/// local id it was asked with, which lives only as long as the call.
fn boxed(
    stream: impl Stream<Item = ServerSseMessage> + Send + Sync + 'static,
) -> Pin<Box<dyn Stream<Item = ServerSseMessage> + Send + Sync>> {
    Box::pin(stream)
}

/// rmcp's local sessions under ids that name this replica.
pub struct ReplicaSessions {
    /// `<replica id>.`
    prefix: String,
    local: LocalSessionManager,
}

impl ReplicaSessions {
    pub fn new(replica: &str, local: LocalSessionManager) -> Self {
        ReplicaSessions {
            prefix: format!("{replica}{SEPARATOR}"),
            local,
        }
    }

    /// The local session's id; an id of another replica's (or of none) stays as it
    /// is, and the local sessions do not know it (404, as for any unknown session).
    fn local_id(&self, id: &SessionId) -> SessionId {
        match id.strip_prefix(&self.prefix) {
            Some(local) => local.into(),
            None => id.clone(),
        }
    }
}

impl SessionManager for ReplicaSessions {
    type Error = LocalSessionManagerError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let (local, transport) = self.local.create_session().await?;
        Ok((format!("{}{local}", self.prefix).into(), transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.local
            .initialize_session(&self.local_id(id), message)
            .await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.local.has_session(&self.local_id(id)).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.local.close_session(&self.local_id(id)).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let local = self.local_id(id);
        Ok(boxed(self.local.create_stream(&local, message).await?))
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.local.accept_message(&self.local_id(id), message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let local = self.local_id(id);
        Ok(boxed(self.local.create_standalone_stream(&local).await?))
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let local = self.local_id(id);
        Ok(boxed(self.local.resume(&local, last_event_id).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_names_the_replica_that_holds_it() {
        assert_eq!(holder("r-1.abc"), Some("r-1"));
        assert_eq!(holder("abc"), None);
        assert_eq!(holder(".abc"), None);
        let sessions = ReplicaSessions::new("r-1", LocalSessionManager::default());
        assert_eq!(&*sessions.local_id(&"r-1.abc".into()), "abc");
        assert_eq!(&*sessions.local_id(&"r-2.abc".into()), "r-2.abc");
    }

    #[tokio::test]
    async fn a_session_is_found_under_the_id_it_was_given() {
        let sessions = ReplicaSessions::new("r-1", LocalSessionManager::default());
        let (id, _transport) = sessions.create_session().await.expect("created");
        assert_eq!(holder(&id), Some("r-1"));
        assert!(sessions.has_session(&id).await.expect("asked"));
        let local = sessions.local_id(&id);
        assert!(!sessions
            .has_session(&format!("r-2.{local}").into())
            .await
            .expect("asked"));
        sessions.close_session(&id).await.expect("closed");
        assert!(!sessions.has_session(&id).await.expect("asked"));
    }
}
