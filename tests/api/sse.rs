#![allow(dead_code)] // Shared by the execute and session tests.

//! A small server-sent-events reader: events with the time they arrived.

use std::time::{Duration, Instant};

use serde_json::Value;

#[derive(Clone, Debug)]
pub struct SseEvent {
    pub name: String,
    pub data: Value,
    /// Since the request was sent.
    pub at: Duration,
}

/// Reads events from a streaming response until it ends.
pub struct SseReader {
    response: reqwest::Response,
    buffer: String,
    started: Instant,
}

impl SseReader {
    pub fn new(response: reqwest::Response, started: Instant) -> Self {
        SseReader {
            response,
            buffer: String::new(),
            started,
        }
    }

    /// The next event (keep-alive comments are skipped); `None` when the stream ended.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_block(&block, self.started.elapsed()) {
                    return Some(event);
                }
                continue;
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }

    /// Every remaining event.
    pub async fn collect(mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
    }
}

fn parse_block(block: &str, at: Duration) -> Option<SseEvent> {
    let mut name = String::from("message");
    let mut data = Vec::new();
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            name = value.trim().to_string();
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push(value.strip_prefix(' ').unwrap_or(value).to_string());
        }
    }
    if data.is_empty() {
        return None; // a comment (keep-alive)
    }
    let text = data.join("\n");
    let data = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Some(SseEvent { name, data, at })
}

/// Sends `body` to `path` asking for a stream; panics unless the answer is a stream.
pub async fn open_stream(
    server: &crate::harness::Server,
    path: &str,
    token: &str,
    body: &Value,
) -> SseReader {
    let started = Instant::now();
    let response = server
        .client
        .post(server.url(path))
        .bearer_auth(token)
        .header("Accept", "text/event-stream")
        .json(body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "a stream is answered 200");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        content_type.starts_with("text/event-stream"),
        "content type {content_type}"
    );
    SseReader::new(response, started)
}
