//! Admission control: at most `admission.max_concurrent_runs` runs execute at once; a
//! request that cannot start within `admission.max_wait` is answered 504 instead of
//! waiting forever.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::error::RuntimeError;

#[derive(Clone)]
pub struct Admission {
    slots: Arc<Semaphore>,
    capacity: usize,
    max_wait: Duration,
    /// Rung each time a slot is given back: the task queue may claim with it.
    freed: Arc<Notify>,
}

/// Held while a run executes; the slot is free again when it is dropped.
pub struct Admitted {
    permit: Option<OwnedSemaphorePermit>,
    freed: Arc<Notify>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        // The slot is back before anyone is told so.
        drop(self.permit.take());
        self.freed.notify_one();
    }
}

impl Admission {
    pub fn new(capacity: usize, max_wait: Duration) -> Self {
        Admission {
            slots: Arc::new(Semaphore::new(capacity)),
            capacity,
            max_wait,
            freed: Arc::new(Notify::new()),
        }
    }

    fn admitted(&self, permit: OwnedSemaphorePermit) -> Admitted {
        Admitted {
            permit: Some(permit),
            freed: self.freed.clone(),
        }
    }

    /// Completes once a slot has been given back since the last time it did.
    pub async fn slot_freed(&self) {
        self.freed.notified().await;
    }

    pub async fn admit(&self) -> Result<Admitted, RuntimeError> {
        let started = Instant::now();
        match tokio::time::timeout(self.max_wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => {
                crate::metrics::record_admission_wait(started.elapsed());
                Ok(self.admitted(permit))
            }
            Ok(Err(_closed)) => Err(RuntimeError::ShuttingDown),
            Err(_elapsed) => {
                metrics::counter!("runbox_admission_rejected_total").increment(1);
                tracing::warn!(
                    capacity = self.capacity,
                    waited_ms = self.max_wait.as_millis() as u64,
                    "admission wait expired"
                );
                Err(RuntimeError::Overloaded)
            }
        }
    }

    /// A slot when one is free right now, without waiting: a replica claims a queued
    /// task only with one in hand, so it never takes more than it can run.
    pub fn try_admit(&self) -> Option<Admitted> {
        let permit = self.slots.clone().try_acquire_owned().ok()?;
        Some(self.admitted(permit))
    }

    /// Runs executing right now.
    pub fn running(&self) -> usize {
        self.capacity - self.slots.available_permits()
    }

    /// Refuses new work (shutdown); waiting requests fail at once.
    pub fn close(&self) {
        self.slots.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_house_answers_overloaded_after_the_wait() {
        let admission = Admission::new(1, Duration::from_millis(50));
        let first = admission.admit().await.expect("first is admitted");
        assert_eq!(admission.running(), 1);
        let started = Instant::now();
        assert!(matches!(
            admission.admit().await,
            Err(RuntimeError::Overloaded)
        ));
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(admission.try_admit().is_none(), "no slot to claim with");
        drop(first);
        let claimed = admission.try_admit().expect("a free slot");
        assert_eq!(admission.running(), 1);
        drop(claimed);
        assert!(admission.admit().await.is_ok());
        admission.close();
        assert!(
            admission.try_admit().is_none(),
            "closed: nothing is claimed"
        );
    }

    #[tokio::test]
    async fn a_slot_given_back_is_announced_once_it_is_free() {
        let admission = Admission::new(1, Duration::from_millis(50));
        let held = admission.try_admit().expect("a slot");
        let waiter = {
            let admission = admission.clone();
            tokio::spawn(async move {
                admission.slot_freed().await;
                admission.try_admit().is_some()
            })
        };
        tokio::task::yield_now().await;
        drop(held);
        let claimed = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("told within 5 s")
            .expect("the waiter ran");
        assert!(claimed, "the slot was free when it was announced");
    }
}
