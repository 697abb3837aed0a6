//! Server-sent events for the native surface: `stdout` and `stderr` as the code writes
//! them and `display` as it shows an item (in the order it made them), one `image` per
//! stored image file, then the `result` object (or an `error` event when
//! runbox itself failed after the stream had begun).
//!
//! The run happens in a task of its own. What a disconnecting client does to it is the
//! caller's choice: a one-shot run is cancelled (its container removed at once), a
//! session's exec finishes so that the session stays consistent.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::Stream;
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;

use runbox_runtime::result::ResultObject;
use runbox_runtime::{Run, RunEvent};

use crate::error::ApiResult;

/// Keep-alive comments also find out early that a silent run's client has gone: a
/// write to a closed connection fails, and the stream is dropped.
const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// Events buffered towards a slow client; when full, the run's output waits (bounded
/// memory, the same backpressure as a buffered run).
const EVENT_DEPTH: usize = 64;

/// `Accept: text/event-stream` or `"stream": true`; an explicit `"stream": false` wins.
pub fn wants_stream(headers: &HeaderMap, asked: Option<bool>) -> bool {
    asked.unwrap_or_else(|| {
        headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(|value| value.contains("text/event-stream"))
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDisconnect {
    /// Drop the run: its sandbox is killed and removed.
    Cancel,
    /// Let the run finish; its events go nowhere.
    Finish,
}

/// Answers a run the runtime has admitted: its result object, or (`stream`) its events
/// and then its result.
pub async fn answer(run: Run, stream: bool, on_disconnect: OnDisconnect) -> ApiResult<Response> {
    if stream {
        return Ok(respond(on_disconnect, move |events| async move {
            Ok(ResultObject::from_executed(run.finish(Some(events)).await?))
        }));
    }
    let executed = run.finish(None).await?;
    Ok(Json(ResultObject::from_executed(executed)).into_response())
}

/// Streams what `work` produces. `work` gets the sender for the run's output.
pub fn respond<F, Fut>(on_disconnect: OnDisconnect, work: F) -> Response
where
    F: FnOnce(mpsc::Sender<RunEvent>) -> Fut + Send + 'static,
    Fut: Future<Output = ApiResult<ResultObject>> + Send + 'static,
{
    let (events, receiver) = mpsc::channel(EVENT_DEPTH);
    let task = tokio::spawn(forward(work, events));
    let task = match on_disconnect {
        OnDisconnect::Cancel => Some(AbortOnDropHandle::new(task)),
        // Dropping a JoinHandle detaches the task.
        OnDisconnect::Finish => None,
    };
    let stream = EventStream {
        receiver,
        _task: task,
    };
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

async fn forward<F, Fut>(work: F, events: mpsc::Sender<Event>)
where
    F: FnOnce(mpsc::Sender<RunEvent>) -> Fut,
    Fut: Future<Output = ApiResult<ResultObject>>,
{
    let (output, mut output_rx) = mpsc::channel(EVENT_DEPTH);
    let run = work(output);
    tokio::pin!(run);
    // A client that went away makes every send fail; the output is still drained so
    // that a run that is left to finish never blocks on it.
    let finished = loop {
        tokio::select! {
            Some(event) = output_rx.recv() => {
                let _ = events.send(output_event(event)).await;
            }
            finished = &mut run => break finished,
        }
    };
    while let Ok(event) = output_rx.try_recv() {
        let _ = events.send(output_event(event)).await;
    }
    match finished {
        Ok(result) => {
            for image in &result.images {
                let _ = events.send(json_event("image", image)).await;
            }
            let _ = events.send(json_event("result", &result)).await;
        }
        Err(err) => {
            let _ = events.send(json_event("error", &err.stream_event())).await;
        }
    }
}

/// `stdout` and `stderr` events of a stream: output as the code writes it.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamOutputEvent {
    pub data: String,
}

fn output_event(event: RunEvent) -> Event {
    match event {
        RunEvent::Stdout(data) => json_event("stdout", &StreamOutputEvent { data }),
        RunEvent::Stderr(data) => json_event("stderr", &StreamOutputEvent { data }),
        RunEvent::Display(output) => json_event("display", &output),
    }
}

fn json_event(name: &str, data: &impl serde::Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(data)
        .unwrap_or_else(|_| Event::default().event(name).data("null"))
}

/// The response body: the events, and (for a cancellable run) the task, which is
/// aborted when the body is dropped, i.e. when the client has gone.
struct EventStream {
    receiver: mpsc::Receiver<Event>,
    _task: Option<AbortOnDropHandle<()>>,
}

impl Stream for EventStream {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.receiver.poll_recv(cx).map(|event| event.map(Ok))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn streams_are_asked_for_by_header_or_field() {
        let mut headers = HeaderMap::new();
        assert!(!wants_stream(&headers, None));
        assert!(wants_stream(&headers, Some(true)));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        assert!(wants_stream(&headers, None));
        assert!(!wants_stream(&headers, Some(false)));
    }
}
