//! One run asked of one replica, and what came of it: which replica served it, how
//! long it took, and how it failed.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The header a forwarded answer carries: the id of the replica that served it.
const FORWARDED_TO: &str = "runbox-forwarded-to";

/// How one run ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// 2xx with the expected output; the replica that served it, when it was forwarded.
    Ok { forwarded_to: Option<String> },
    /// No connection was made: nothing was sent (a load balancer tries another).
    Refused,
    /// The answer was not the expected one: the status (or `connection lost`) and a
    /// short sample of what came.
    Failed { kind: String, sample: String },
}

pub(super) struct Call {
    pub(super) outcome: Outcome,
    pub(super) latency: Duration,
}

/// `POST /execute` of `code` at `base`, whose stdout must be `expected`.
pub(super) async fn execute(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    code: &str,
    expected: &str,
) -> Call {
    let started = Instant::now();
    let outcome = match client
        .post(format!("{base}/execute"))
        .bearer_auth(token)
        .json(&json!({"code": code}))
        .send()
        .await
    {
        Err(err) if err.is_connect() => Outcome::Refused,
        Err(err) => Outcome::Failed {
            kind: "connection lost".into(),
            sample: err.to_string(),
        },
        Ok(response) => {
            let status = response.status().as_u16();
            let forwarded_to = response
                .headers()
                .get(FORWARDED_TO)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            match response.bytes().await {
                Err(err) => Outcome::Failed {
                    kind: "connection lost".into(),
                    sample: err.to_string(),
                },
                Ok(bytes) => {
                    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    if (200..300).contains(&status) && body["stdout"] == expected {
                        Outcome::Ok { forwarded_to }
                    } else {
                        let mut sample = String::from_utf8_lossy(&bytes).into_owned();
                        cut(&mut sample, 200);
                        Outcome::Failed {
                            kind: if (200..300).contains(&status) {
                                "unexpected answer".into()
                            } else {
                                status.to_string()
                            },
                            sample,
                        }
                    }
                }
            }
        }
    };
    Call {
        outcome,
        latency: started.elapsed(),
    }
}

fn cut(text: &mut String, at: usize) {
    if text.len() > at {
        let mut end = at;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
}
