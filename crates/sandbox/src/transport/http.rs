//! HTTP to the agent on a host port of `sandbox.port_range`, published on 127.0.0.1
//! only. Every call carries the container's random challenge key, which the agent checks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::task::JoinHandle;

use super::messages::{parse_message, report_failed_preload, EventForwarder, ExecEnd};
use crate::backend::Backend;
use crate::frame::FrameDecoder;
use crate::protocol::{AgentMessage, ExecMessage};
use crate::SandboxError;

pub const KEY_HEADER: &str = "X-Runbox-Key";
/// How often start-up asks whether the agent listens yet.
const READY_POLL: Duration = Duration::from_millis(15);

pub(crate) struct HttpConnection {
    client: reqwest::Client,
    base: String,
    key: String,
    max_frame: usize,
    /// Set when the engine reports the container stopped (see `watch_exit`).
    exited: Arc<AtomicBool>,
    watcher: Option<JoinHandle<()>>,
}

impl Drop for HttpConnection {
    fn drop(&mut self) {
        if let Some(watcher) = self.watcher.take() {
            watcher.abort();
        }
    }
}

impl HttpConnection {
    pub fn new(client: reqwest::Client, host_port: u16, key: String, max_frame: usize) -> Self {
        HttpConnection {
            client,
            base: format!("http://127.0.0.1:{host_port}"),
            key,
            max_frame,
            exited: Arc::new(AtomicBool::new(false)),
            watcher: None,
        }
    }

    /// Unlike the attach stream of stdio, an idle HTTP connection does not notice that
    /// its container died; the engine's wait call does, so a dead pooled sandbox is
    /// never handed out.
    pub fn watch_exit(&mut self, engine: Arc<dyn Backend>, id: &str) {
        let id = id.to_string();
        let exited = self.exited.clone();
        self.watcher = Some(tokio::spawn(async move {
            let _ = engine.wait(&id).await;
            exited.store(true, Ordering::SeqCst);
        }));
    }

    pub fn seems_alive(&self) -> bool {
        !self.exited.load(Ordering::SeqCst)
    }

    pub async fn wait_ready(&mut self, within: Duration) -> Result<Vec<String>, SandboxError> {
        let deadline = Instant::now() + within;
        loop {
            let attempt = self
                .client
                .get(format!("{}/ready", self.base))
                .header(KEY_HEADER, &self.key)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if let Ok(response) = attempt {
                if response.status().is_success() {
                    let body = response.bytes().await.unwrap_or_default();
                    return match parse_message(&body)? {
                        AgentMessage::Ready { preloaded, failed } => {
                            report_failed_preload(&failed);
                            Ok(preloaded)
                        }
                        _ => Err(SandboxError::Protocol(
                            "GET /ready did not answer with a ready message".into(),
                        )),
                    };
                }
                if response.status() == reqwest::StatusCode::FORBIDDEN {
                    return Err(SandboxError::Protocol(
                        "the agent refused the challenge key".into(),
                    ));
                }
            }
            if Instant::now() >= deadline {
                return Err(SandboxError::AgentStartup(within));
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    pub async fn exec(
        &mut self,
        message: &ExecMessage<'_>,
        events: &mut EventForwarder<'_>,
    ) -> Result<ExecEnd, SandboxError> {
        let response = match self
            .client
            .post(format!("{}/exec", self.base))
            .header(KEY_HEADER, &self.key)
            .json(message)
            .send()
            .await
        {
            Ok(response) => response,
            // Refused or reset: the container (and with it the agent) is gone.
            Err(err) if err.is_connect() || err.is_request() => return Ok(ExecEnd::Lost),
            Err(err) => {
                return Err(SandboxError::Protocol(format!(
                    "sending the code to the agent: {err}"
                )))
            }
        };
        if !response.status().is_success() {
            return Err(SandboxError::Protocol(format!(
                "the agent answered {} to /exec",
                response.status()
            )));
        }
        let mut body = response.bytes_stream();
        let mut decoder = FrameDecoder::new(self.max_frame);
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else {
                return Ok(ExecEnd::Lost);
            };
            decoder.push(&chunk);
            while let Some(frame) = decoder.next_frame()? {
                if let Some(result) = events.handle(parse_message(&frame)?).await {
                    return Ok(ExecEnd::Result(result));
                }
            }
        }
        Ok(ExecEnd::Lost)
    }

    pub async fn ping(&mut self, within: Duration) -> bool {
        let response = self
            .client
            .get(format!("{}/ping", self.base))
            .header(KEY_HEADER, &self.key)
            .timeout(within)
            .send()
            .await;
        matches!(response, Ok(r) if r.status().is_success())
    }
}
