//! The calls of stored functions running in this server, sync and async together: what
//! `max_concurrency` counts, what `terminate` and `DELETE /tasks/{id}` cancel, and what
//! shutdown waits for. A call holds its [`CallSlot`] from admission to its end; the
//! slot leaves the registry when dropped, on every path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
pub struct RunningCalls {
    inner: Arc<Registry>,
}

#[derive(Default)]
struct Registry {
    by_function: Mutex<HashMap<String, HashMap<u64, Entry>>>,
    next_id: AtomicU64,
}

struct Entry {
    cancel: CancellationToken,
    done: CancellationToken,
    task_id: Option<String>,
}

/// One running call. `cancel` fires to stop it (its sandbox is killed); `done` fires
/// when the slot is dropped, i.e. when the call has ended and its sandbox is gone.
pub struct CallSlot {
    registry: Arc<Registry>,
    function: String,
    id: u64,
    pub cancel: CancellationToken,
    done: CancellationToken,
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        let mut calls = lock(&self.registry.by_function);
        if let Some(running) = calls.get_mut(&self.function) {
            running.remove(&self.id);
            if running.is_empty() {
                calls.remove(&self.function);
            }
        }
        drop(calls);
        self.done.cancel();
    }
}

impl RunningCalls {
    /// A slot for one more call of `function`, or `Err(limit)` when `limit` calls of it
    /// are already running. `parent` is cancelled at shutdown.
    pub fn try_enter(
        &self,
        function: &str,
        limit: Option<usize>,
        task_id: Option<&str>,
        parent: &CancellationToken,
    ) -> Result<CallSlot, usize> {
        let mut calls = lock(&self.inner.by_function);
        let running = calls.entry(function.to_string()).or_default();
        if let Some(limit) = limit {
            if running.len() >= limit {
                if running.is_empty() {
                    calls.remove(function);
                }
                return Err(limit);
            }
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let cancel = parent.child_token();
        let done = CancellationToken::new();
        running.insert(
            id,
            Entry {
                cancel: cancel.clone(),
                done: done.clone(),
                task_id: task_id.map(str::to_string),
            },
        );
        Ok(CallSlot {
            registry: self.inner.clone(),
            function: function.to_string(),
            id,
            cancel,
            done,
        })
    }

    pub fn running(&self, function: &str) -> usize {
        lock(&self.inner.by_function)
            .get(function)
            .map_or(0, HashMap::len)
    }

    /// Cancels every running call of `function`; returns the `done` signals to wait on
    /// and the ids of the tasks among them.
    pub fn cancel_function(&self, function: &str) -> (Vec<CancellationToken>, Vec<String>) {
        let calls = lock(&self.inner.by_function);
        let mut done = Vec::new();
        let mut task_ids = Vec::new();
        for entry in calls.get(function).into_iter().flat_map(HashMap::values) {
            entry.cancel.cancel();
            done.push(entry.done.clone());
            task_ids.extend(entry.task_id.clone());
        }
        (done, task_ids)
    }

    /// Cancels the call running task `task_id`; its `done` signal, or `None` when this
    /// server does not run that task.
    pub fn cancel_task(&self, task_id: &str) -> Option<CancellationToken> {
        let calls = lock(&self.inner.by_function);
        let entry = calls
            .values()
            .flat_map(HashMap::values)
            .find(|e| e.task_id.as_deref() == Some(task_id))?;
        entry.cancel.cancel();
        Some(entry.done.clone())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_counts_running_calls_and_frees_on_drop() {
        let calls = RunningCalls::default();
        let root = CancellationToken::new();
        let first = calls.try_enter("f", Some(2), None, &root).expect("first");
        let second = calls
            .try_enter("f", Some(2), Some("t2"), &root)
            .expect("second");
        assert_eq!(calls.try_enter("f", Some(2), None, &root).err(), Some(2));
        assert!(
            calls.try_enter("g", Some(2), None, &root).is_ok(),
            "per function"
        );
        assert_eq!(calls.running("f"), 2);
        drop(first);
        assert_eq!(calls.running("f"), 1);
        let done = calls.cancel_task("t2").expect("running");
        assert!(second.cancel.is_cancelled());
        assert!(!done.is_cancelled());
        drop(second);
        assert!(done.is_cancelled());
        assert_eq!(calls.running("f"), 0);
        assert!(calls.cancel_task("t2").is_none());
    }

    #[test]
    fn terminate_and_shutdown_cancel_every_call() {
        let calls = RunningCalls::default();
        let root = CancellationToken::new();
        let a = calls.try_enter("f", None, Some("t"), &root).expect("a");
        let b = calls.try_enter("f", None, None, &root).expect("b");
        let other = calls.try_enter("g", None, None, &root).expect("other");
        let (done, tasks) = calls.cancel_function("f");
        assert_eq!(done.len(), 2);
        assert_eq!(tasks, vec!["t".to_string()]);
        assert!(a.cancel.is_cancelled() && b.cancel.is_cancelled());
        assert!(!other.cancel.is_cancelled());
        root.cancel();
        assert!(other.cancel.is_cancelled());
    }
}
