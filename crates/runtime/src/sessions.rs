//! Stateful sessions: each one owns a dedicated sandbox whose interpreter keeps its
//! globals, imports and files between execs, for as long as it is used.
//!
//! - A session belongs to the subject that opened it; to everyone else it does not
//!   exist (404).
//! - One exec at a time: a second one while the first runs is refused (409) rather
//!   than queued, so that no request ever waits on another client's code.
//! - A session ends when it is deleted, idle for its `idle_timeout`, older than
//!   `sessions.max_lifetime`, when an exec times out or kills the interpreter (out of
//!   memory, crash), and at shutdown. Its container is removed then. A deleted session
//!   is gone (404); any other ended session answers 410 with the reason for
//!   [`TOMBSTONE_TTL`], then 404.
//! - At most `sessions.max_per_subject` live sessions per subject (429 beyond).
//!
//! Just over 500 lines: the registry, a session and its exec lease share one lock
//! discipline, which is easiest to check in one file.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use runbox_core::config::SessionsConfig;
use runbox_core::units::human_seconds;
use runbox_core::{ErrorKind, ExecEvent, ExecOutcome, ExecRequest, Isolation, Language};
use runbox_sandbox::{SandboxError, Sandboxes, SessionSandbox};
use serde::Serialize;
use tokio::sync::{mpsc, OwnedMutexGuard};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often the reaper looks for idle and expired sessions.
const REAP_EVERY: Duration = Duration::from_millis(500);
/// How long an ended session still answers 410 with why it ended.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("Session not found")]
    NotFound,
    #[error("session ended: {0}")]
    Ended(String),
    #[error("the session is busy: another execution is running in it")]
    Busy,
    #[error("too many live sessions: at most {max} per subject")]
    TooMany { max: usize, retry_after: u64 },
    #[error("runbox is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

/// The registry of every session of this server.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Registry>,
}

struct Registry {
    sandboxes: Sandboxes,
    config: SessionsConfig,
    table: Mutex<Table>,
    closed: CancellationToken,
    /// Background removals of ended sessions' containers; shutdown waits for them.
    closing: TaskTracker,
}

#[derive(Default)]
struct Table {
    sessions: HashMap<String, Arc<Session>>,
    /// Sessions whose sandbox is being started, per subject: they count against the cap.
    opening: HashMap<String, usize>,
}

pub struct Session {
    pub id: String,
    pub subject: String,
    pub language: Language,
    /// The isolation its sandbox runs under, fixed when it opened.
    pub isolation: Isolation,
    pub created_at: DateTime<Utc>,
    created: Instant,
    pub idle_timeout: Duration,
    max_lifetime: Duration,
    sandbox: Arc<tokio::sync::Mutex<SessionSandbox>>,
    status: Mutex<Status>,
    /// Fires when the session is ended from outside (delete, reaper, shutdown): a
    /// running exec stops and the container goes.
    ending: CancellationToken,
}

struct Status {
    last_used: Instant,
    last_used_at: DateTime<Utc>,
    executions: u64,
    busy: bool,
    ended: Option<Ended>,
}

#[derive(Clone)]
struct Ended {
    reason: String,
    at: Instant,
    at_utc: DateTime<Utc>,
}

/// What `GET /sessions/{id}` shows (and what a replica reads of a peer's list).
#[derive(Clone, Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SessionInfo {
    pub id: String,
    pub language: Language,
    /// `standard`, `strong`, or the OCI runtime it asked for.
    pub isolation: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    /// When the session ends unless it is used before (null once it has ended).
    pub expires_at: Option<DateTime<Utc>>,
    /// Seconds.
    pub idle_timeout: f64,
    /// Seconds.
    pub max_lifetime: f64,
    pub executions: u64,
    pub alive: bool,
    pub busy: bool,
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_reason: Option<String>,
}

impl Sessions {
    /// The registry and its reaper, which runs until `stop` fires.
    pub fn start(sandboxes: Sandboxes, config: SessionsConfig, stop: CancellationToken) -> Self {
        let sessions = Sessions {
            inner: Arc::new(Registry {
                sandboxes,
                config,
                table: Mutex::new(Table::default()),
                closed: CancellationToken::new(),
                closing: TaskTracker::new(),
            }),
        };
        tokio::spawn(sessions.clone().reap_loop(stop));
        sessions
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.inner
            .table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Opens session `id` for `subject`: starts its sandbox and registers it.
    pub async fn open(
        &self,
        id: String,
        subject: &str,
        language: Language,
        idle_timeout: Option<Duration>,
        isolation: Isolation,
    ) -> Result<Arc<Session>, SessionError> {
        if self.inner.closed.is_cancelled() {
            return Err(SessionError::ShuttingDown);
        }
        let max = self.inner.config.max_per_subject;
        let _slot = {
            let mut table = self.table();
            let live = table
                .sessions
                .values()
                .filter(|s| s.subject == subject && s.is_live())
                .count();
            let opening = table.opening.get(subject).copied().unwrap_or(0);
            if live + opening >= max {
                let retry_after = table
                    .sessions
                    .values()
                    .filter(|s| s.subject == subject && s.is_live())
                    .map(|s| s.deadline().saturating_duration_since(Instant::now()))
                    .min()
                    .map_or(1, |left| left.as_secs().max(1));
                return Err(SessionError::TooMany { max, retry_after });
            }
            *table.opening.entry(subject.to_string()).or_default() += 1;
            OpeningSlot {
                sessions: self,
                subject,
            }
        };
        let sandbox = self.inner.sandboxes.open_session(&isolation).await?;
        let idle = idle_timeout
            .unwrap_or(self.inner.config.idle_timeout.get())
            .min(self.inner.config.idle_timeout.get());
        let now = Instant::now();
        let session = Arc::new(Session {
            id,
            subject: subject.to_string(),
            language,
            isolation,
            created_at: Utc::now(),
            created: now,
            idle_timeout: idle,
            max_lifetime: self.inner.config.max_lifetime.get(),
            sandbox: Arc::new(tokio::sync::Mutex::new(sandbox)),
            status: Mutex::new(Status {
                last_used: now,
                last_used_at: Utc::now(),
                executions: 0,
                busy: false,
                ended: None,
            }),
            ending: CancellationToken::new(),
        });
        if self.inner.closed.is_cancelled() {
            session.end("runbox is shutting down");
            session.close_sandbox().await;
            return Err(SessionError::ShuttingDown);
        }
        self.table()
            .sessions
            .insert(session.id.clone(), session.clone());
        tracing::info!(session = %session.id, subject, idle_s = idle.as_secs_f64(), "session opened");
        Ok(session)
    }

    /// The session `id` if `subject` owns it (ended ones included).
    pub fn find(&self, subject: &str, id: &str) -> Result<Arc<Session>, SessionError> {
        self.table()
            .sessions
            .get(id)
            .filter(|s| s.subject == subject)
            .cloned()
            .ok_or(SessionError::NotFound)
    }

    /// Every session this server remembers, ended ones included.
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.table().sessions.values().cloned().collect()
    }

    /// `subject`'s sessions, oldest first.
    pub fn list(&self, subject: &str) -> Vec<Arc<Session>> {
        let mut sessions: Vec<Arc<Session>> = self
            .table()
            .sessions
            .values()
            .filter(|s| s.subject == subject)
            .cloned()
            .collect();
        sessions.sort_by_key(|s| s.created);
        sessions
    }

    /// Ends the session, waits until its container is gone and forgets it.
    pub async fn delete(&self, subject: &str, id: &str) -> Result<(), SessionError> {
        let session = self.find(subject, id)?;
        session.end("the session was deleted");
        session.close_sandbox().await;
        self.table().sessions.remove(id);
        tracing::info!(session = %id, subject, "session deleted");
        Ok(())
    }

    /// Shutdown: no new sessions; every session ends and its container is removed
    /// before this returns.
    pub async fn close_all(&self) {
        self.inner.closed.cancel();
        let sessions: Vec<Arc<Session>> = self.table().sessions.values().cloned().collect();
        for session in &sessions {
            session.end("runbox is shutting down");
        }
        futures::future::join_all(sessions.iter().map(|s| s.close_sandbox())).await;
        self.inner.closing.close();
        self.inner.closing.wait().await;
    }

    /// Live sessions of every subject (for /health).
    pub fn live(&self) -> usize {
        self.table()
            .sessions
            .values()
            .filter(|s| s.is_live())
            .count()
    }

    async fn reap_loop(self, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.inner.closed.cancelled() => return,
                () = tokio::time::sleep(REAP_EVERY) => {}
            }
            self.reap(Instant::now());
        }
    }

    /// Ends idle and expired sessions and forgets tombstones past their time.
    fn reap(&self, now: Instant) {
        let mut ending = Vec::new();
        {
            let mut table = self.table();
            table.sessions.retain(|_, session| {
                let status = session.status();
                if let Some(ended) = &status.ended {
                    return now.saturating_duration_since(ended.at) < TOMBSTONE_TTL;
                }
                if now >= session.created + session.max_lifetime {
                    ending.push((
                        session.clone(),
                        format!(
                            "it reached the maximum lifetime of {}",
                            human_seconds(session.max_lifetime)
                        ),
                    ));
                } else if !status.busy && now >= status.last_used + session.idle_timeout {
                    ending.push((
                        session.clone(),
                        format!("it was idle for {}", human_seconds(session.idle_timeout)),
                    ));
                }
                true
            });
        }
        for (session, reason) in ending {
            tracing::info!(session = %session.id, %reason, "session reaped");
            session.end(&reason);
            self.inner
                .closing
                .spawn(async move { session.close_sandbox().await });
        }
    }
}

/// A session being opened counts against its subject's cap until it is registered.
struct OpeningSlot<'a> {
    sessions: &'a Sessions,
    subject: &'a str,
}

impl Drop for OpeningSlot<'_> {
    fn drop(&mut self) {
        let mut table = self.sessions.table();
        if let Some(count) = table.opening.get_mut(self.subject) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                table.opening.remove(self.subject);
            }
        }
    }
}

impl Session {
    fn status(&self) -> MutexGuard<'_, Status> {
        self.status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn is_live(&self) -> bool {
        self.status().ended.is_none()
    }

    /// When the session ends unless it is used: idle timeout or maximum lifetime.
    fn deadline(&self) -> Instant {
        let last_used = self.status().last_used;
        (last_used + self.idle_timeout).min(self.created + self.max_lifetime)
    }

    pub fn info(&self) -> SessionInfo {
        let now = Instant::now();
        let status = self.status();
        let expires_at = status.ended.is_none().then(|| {
            let deadline =
                (status.last_used + self.idle_timeout).min(self.created + self.max_lifetime);
            let left = deadline.saturating_duration_since(now);
            Utc::now() + chrono::Duration::from_std(left).unwrap_or(chrono::Duration::zero())
        });
        SessionInfo {
            id: self.id.clone(),
            language: self.language,
            isolation: self.isolation.name().to_string(),
            created_at: self.created_at,
            last_used_at: status.last_used_at,
            expires_at,
            idle_timeout: self.idle_timeout.as_secs_f64(),
            max_lifetime: self.max_lifetime.as_secs_f64(),
            executions: status.executions,
            alive: status.ended.is_none(),
            busy: status.busy,
            ended_at: status.ended.as_ref().map(|e| e.at_utc),
            ended_reason: status.ended.as_ref().map(|e| e.reason.clone()),
        }
    }

    /// Marks the session ended (the first reason wins) and stops a running exec.
    fn end(&self, reason: &str) {
        let mut status = self.status();
        if status.ended.is_none() {
            status.ended = Some(Ended {
                reason: reason.to_string(),
                at: Instant::now(),
                at_utc: Utc::now(),
            });
        }
        drop(status);
        self.ending.cancel();
    }

    /// Removes the container; waits for a running exec to notice the end first.
    async fn close_sandbox(&self) {
        self.sandbox.lock().await.close().await;
    }

    fn ended_error(&self) -> Option<SessionError> {
        self.status()
            .ended
            .as_ref()
            .map(|ended| SessionError::Ended(ended.reason.clone()))
    }

    /// Claims the session for one exec: 410 once it has ended, 409 while another runs.
    pub fn begin(self: &Arc<Self>) -> Result<ExecLease, SessionError> {
        if let Some(err) = self.ended_error() {
            return Err(err);
        }
        let sandbox = self
            .sandbox
            .clone()
            .try_lock_owned()
            .map_err(|_| SessionError::Busy)?;
        if let Some(err) = self.ended_error() {
            return Err(err);
        }
        let mut status = self.status();
        status.busy = true;
        status.last_used = Instant::now();
        status.last_used_at = Utc::now();
        drop(status);
        Ok(ExecLease {
            session: self.clone(),
            sandbox,
        })
    }
}

/// The right to run one exec in a session; the session is busy while it exists.
pub struct ExecLease {
    session: Arc<Session>,
    sandbox: OwnedMutexGuard<SessionSandbox>,
}

impl ExecLease {
    /// Runs `request` in the session. A timeout, an out-of-memory kill or a crash ends
    /// the session (the outcome says so); so does an end from outside while it runs.
    pub async fn exec(
        mut self,
        request: &ExecRequest,
        events: Option<&mpsc::Sender<ExecEvent>>,
    ) -> ExecOutcome {
        let session = self.session.clone();
        let started = Instant::now();
        let ran = tokio::select! {
            ran = self.sandbox.exec(request, events) => Some(ran),
            () = session.ending.cancelled() => None,
        };
        {
            let mut status = session.status();
            status.executions += 1;
            status.last_used = Instant::now();
            status.last_used_at = Utc::now();
        }
        let Some(ran) = ran else {
            self.sandbox.close().await;
            let reason = session
                .ended_error()
                .map_or_else(|| "the session has ended".to_string(), |e| e.to_string());
            let mut outcome = ExecOutcome::failed(ErrorKind::Killed, reason);
            outcome.execution_time = started.elapsed();
            return outcome;
        };
        match ran {
            Ok(mut outcome) => {
                if !self.sandbox.is_alive() {
                    let reason = match outcome.error.as_ref().map(|e| e.kind) {
                        Some(ErrorKind::Timeout) => format!(
                            "an execution exceeded its time limit of {}",
                            human_seconds(request.timeout)
                        ),
                        Some(ErrorKind::Memory) => "the sandbox ran out of memory".to_string(),
                        _ => "the interpreter was killed".to_string(),
                    };
                    session.end(&reason);
                    self.sandbox.close().await;
                    if let Some(error) = outcome.error.as_mut() {
                        if !error.message.contains("session has ended") {
                            error.message.push_str("; the session has ended");
                        }
                    }
                }
                outcome
            }
            // The container went away under the session (removed from outside, the
            // engine restarted): for the client that is a crash of its interpreter.
            Err(err) => {
                tracing::warn!(session = %session.id, error = %err, "session sandbox failed");
                session.end(&format!("its sandbox failed: {err}"));
                self.sandbox.close().await;
                let mut outcome = ExecOutcome::failed(
                    ErrorKind::Killed,
                    format!("the session's sandbox failed ({err}); the session has ended"),
                );
                outcome.execution_time = started.elapsed();
                outcome
            }
        }
    }
}

impl Drop for ExecLease {
    fn drop(&mut self) {
        self.session.status().busy = false;
    }
}
