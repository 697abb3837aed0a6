//! The task queue as one replica works it: it claims queued tasks while its admission
//! has a free slot (so load spreads by itself: a busy replica claims nothing), woken by
//! the other replicas' signals (`LISTEN/NOTIFY`), by its own runs ending, and by a slow
//! safety poll for signals lost on the way. Cancel requests for the tasks it runs reach
//! it the same ways.

use std::sync::atomic::Ordering;
use std::time::Duration;

use runbox_core::{ErrorKind, ExecError, Isolation};
use runbox_store::{TaskListener, TaskRecord, TaskSignal, TaskStatus};
use serde_json::Value;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::tasks::task_result_of;
use super::{Admit, Functions, Prepared};
use crate::admission::Admitted;
use crate::cluster::leases::ClusterLeases;
use crate::result::Executed;

/// How often the queue is looked at without a signal: only signals lost on the way (a
/// dropped listener connection) wait this long.
const SAFETY_POLL: Duration = Duration::from_secs(5);
/// How long a failed listener waits before it connects again.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// Why a claimed task does not start now.
enum Unready {
    /// Its function is at its `max_concurrency` (here or across the replicas): it goes
    /// back to the queue.
    Full,
    /// It can never run: it ends `FAILED`, saying why.
    Fails(String),
}

impl Functions {
    /// Works the queue until `stop`: claims while there is room, acts on cancel
    /// requests, and hears the other replicas (`listener`, on PostgreSQL).
    pub(crate) fn spawn_queue(&self, listener: Option<TaskListener>, stop: CancellationToken) {
        let functions = self.clone();
        let claims_stop = stop.clone();
        tokio::spawn(async move { functions.claim_loop(claims_stop).await });
        let functions = self.clone();
        tokio::spawn(async move { functions.listen_loop(listener, stop).await });
    }

    /// Looks at the queue soon (a task was queued, or a run of this replica ended).
    pub(crate) fn wake_queue(&self) {
        self.queue.maybe_queued.store(true, Ordering::SeqCst);
        self.queue.wake.notify_one();
    }

    /// Whether this replica takes work from the queue: not while it shuts down, nor
    /// while its engine does not answer (its peers take the tasks meanwhile; its safety
    /// poll looks again once the engine is back).
    pub(crate) fn claims(&self) -> bool {
        !self.tracker.is_closed() && self.queue.replica.engine_answers.load(Ordering::Relaxed)
    }

    async fn claim_loop(&self, stop: CancellationToken) {
        // An interval rather than a sleep per turn: wakes must not keep postponing it.
        let mut poll = tokio::time::interval(SAFETY_POLL);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut look = true;
        loop {
            if look {
                self.claim_while_room().await;
            }
            look = tokio::select! {
                () = stop.cancelled() => return,
                () = self.queue.wake.notified() => true,
                // A sync run or a session exec gave its slot back: a task that waits for
                // room here can have it now.
                () = self.runner.admission.slot_freed() => {
                    self.queue.maybe_queued.load(Ordering::SeqCst)
                }
                _ = poll.tick() => {
                    self.act_on_cancel_requests().await;
                    true
                }
            };
        }
    }

    async fn listen_loop(&self, mut listener: Option<TaskListener>, stop: CancellationToken) {
        if listener.is_none() && self.queue.signals.is_shared() {
            listener = self.listen_again(&stop).await;
        }
        let Some(mut listener) = listener else {
            return;
        };
        loop {
            let heard = tokio::select! {
                () = stop.cancelled() => return,
                heard = listener.next() => heard,
            };
            match heard {
                Ok(Some(TaskSignal::Queued)) => self.wake_queue(),
                Ok(Some(TaskSignal::Cancel(id))) => {
                    // Only the replica that runs it finds it here.
                    let _ = self.running.cancel_task(&id);
                }
                Ok(None) => {
                    // The connection was made again: signals may have been missed.
                    self.wake_queue();
                    self.act_on_cancel_requests().await;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "lost the task signals; listening again");
                    match self.listen_again(&stop).await {
                        Some(again) => listener = again,
                        None => return,
                    }
                    self.wake_queue();
                }
            }
        }
    }

    /// A new listener, retried every second until `stop`.
    async fn listen_again(&self, stop: &CancellationToken) -> Option<TaskListener> {
        loop {
            match self.queue.signals.listen().await {
                Ok(listener) => return listener,
                Err(err) => tracing::debug!(error = %err, "cannot listen for task signals yet"),
            }
            tokio::select! {
                () = stop.cancelled() => return None,
                () = tokio::time::sleep(LISTEN_RETRY) => {}
            }
        }
    }

    /// Claims queued tasks, oldest first, while admission has a free slot; each claimed
    /// task runs with the slot it was claimed with, and with a lease of its function's
    /// `max_concurrency` across the replicas. A task whose function is at its limit is
    /// given back to the queue, and that function's tasks are skipped until the next
    /// look (a run of this replica ending, a signal, or the safety poll).
    async fn claim_while_room(&self) {
        let mut full: Vec<String> = Vec::new();
        while self.claims() {
            let Some(admitted) = self.runner.admission.try_admit() else {
                return;
            };
            match self
                .runner
                .store
                .claim_next_task_except(&self.queue.replica_id, &full)
                .await
            {
                Ok(Some(task)) => {
                    if let Some(function) = self.start_claimed(task, admitted).await {
                        full.push(function);
                    }
                }
                Ok(None) => {
                    // Tasks of full functions wait for a run to end (here or, at worst
                    // noticed by the safety poll, at a peer): the slot given back just
                    // now must not start another look at once.
                    self.queue.maybe_queued.store(false, Ordering::SeqCst);
                    return;
                }
                Err(err) => {
                    // The slot given back must not start another try at once: the
                    // safety poll tries again.
                    self.queue.maybe_queued.store(false, Ordering::SeqCst);
                    tracing::warn!(error = %err, "cannot claim a queued task");
                    return;
                }
            }
        }
    }

    /// Runs a task this replica claimed from the queue (accepted here or by a peer).
    /// Returns its function's name when the function is at its `max_concurrency`: the
    /// task went back to the queue.
    async fn start_claimed(&self, task: TaskRecord, admitted: Admitted) -> Option<String> {
        let why = match self.prepare_claimed(&task).await {
            Ok(prepared) => {
                self.spawn_task(prepared, admitted, task.id);
                return None;
            }
            Err(Unready::Full) => {
                drop(admitted);
                match self
                    .runner
                    .store
                    .unclaim_task(&task.id, &self.queue.replica_id)
                    .await
                {
                    Ok(true) => return Some(task.function_name),
                    Ok(false) => {
                        // Someone asked to cancel it meanwhile.
                        let cancelled =
                            Executed::cancelled("the task was cancelled before it started");
                        self.end_claimed(&task, TaskStatus::Cancelled, cancelled, "cancelled")
                            .await;
                        return None;
                    }
                    // Left RUNNING here it would never run: it fails, saying why.
                    Err(err) => format!("error: cannot give the task back to the queue: {err}"),
                }
            }
            Err(Unready::Fails(why)) => why,
        };
        tracing::warn!(task = %task.id, function = %task.function_name, reason = %why, "a claimed task cannot run");
        let failed = Executed::failed(ExecError::new(ErrorKind::Sandbox, why.clone()));
        self.end_claimed(&task, TaskStatus::Failed, failed, &why)
            .await;
        None
    }

    /// Records the end of a claimed task that did not run.
    async fn end_claimed(
        &self,
        task: &TaskRecord,
        status: TaskStatus,
        executed: Executed,
        reason: &str,
    ) {
        let result = task_result_of(executed, &task.id);
        let result = serde_json::to_value(result).unwrap_or(Value::Null);
        if let Err(err) = self
            .runner
            .store
            .finish_task(&task.id, status, Some(&result), Some(reason))
            .await
        {
            tracing::error!(task = %task.id, error = %err, "cannot record how a task ended");
        }
        self.task_finished();
    }

    /// What a claimed task runs: its function version, the arguments checked when it was
    /// accepted, the isolation recorded then, its place under the function's
    /// `max_concurrency` here and across the replicas.
    async fn prepare_claimed(&self, task: &TaskRecord) -> Result<Prepared, Unready> {
        let function = self
            .runner
            .store
            .function(&task.function_name, Some(task.function_version))
            .await
            .map_err(|err| Unready::Fails(format!("error: {err}")))?
            .ok_or_else(|| {
                Unready::Fails(format!(
                    "error: function `{}` version {} was deleted before the task ran",
                    task.function_name, task.function_version
                ))
            })?;
        let Value::Object(args) = task.args.clone() else {
            return Err(Unready::Fails(
                "error: the stored arguments are not an object".into(),
            ));
        };
        let isolation = Isolation::parse(&task.isolation)
            .or_else(|| Isolation::parse(&function.isolation))
            .unwrap_or(Isolation::Strong);
        let limit = function
            .max_concurrency
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let slot = self
            .running
            .try_enter(&function.name, limit, Some(&task.id), &self.shutdown)
            .map_err(|_| Unready::Full)?;
        let lease = match limit {
            Some(limit) => {
                let lease = self
                    .leases
                    .acquire(
                        &uuid::Uuid::new_v4().to_string(),
                        &ClusterLeases::function(&function.name),
                        limit,
                    )
                    .await;
                match lease {
                    Ok(Some(lease)) => Some(lease),
                    Ok(None) => return Err(Unready::Full),
                    // Not now: the task waits in the queue for a later look.
                    Err(err) => {
                        tracing::warn!(task = %task.id, error = %err, "cannot take a function's lease");
                        return Err(Unready::Full);
                    }
                }
            }
            None => None,
        };
        Ok(Prepared {
            timeout: self.runner.config.function_timeout(function.timeout_ms),
            function,
            args,
            isolation,
            slot,
            lease,
        })
    }

    /// Runs a claimed task in the background with the slot it was claimed with.
    pub(crate) fn spawn_task(&self, prepared: Prepared, admitted: Admitted, task_id: String) {
        let functions = self.clone();
        self.tracker.spawn(async move {
            let admit = Admit::Claimed {
                task_id: &task_id,
                admitted,
            };
            functions.run_task(prepared, admit, &task_id).await;
        });
    }

    /// Cancels the tasks of this replica that someone asked to cancel (the safety net
    /// for a lost signal, or a request made before the task's slot existed).
    async fn act_on_cancel_requests(&self) {
        match self
            .runner
            .store
            .cancel_requests_for(&self.queue.replica_id)
            .await
        {
            Ok(ids) => {
                for id in ids {
                    let _ = self.running.cancel_task(&id);
                }
            }
            Err(err) => tracing::debug!(error = %err, "cannot read cancel requests"),
        }
    }
}
