//! Admission control: at most `admission.max_concurrent_runs` runs execute at once; a
//! request that cannot start within `admission.max_wait` is answered 504 instead of
//! waiting forever.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::RuntimeError;

#[derive(Clone)]
pub struct Admission {
    slots: Arc<Semaphore>,
    capacity: usize,
    max_wait: Duration,
}

/// Held while a run executes; the slot is free again when it is dropped.
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
}

impl Admission {
    pub fn new(capacity: usize, max_wait: Duration) -> Self {
        Admission {
            slots: Arc::new(Semaphore::new(capacity)),
            capacity,
            max_wait,
        }
    }

    pub async fn admit(&self) -> Result<Admitted, RuntimeError> {
        let started = Instant::now();
        match tokio::time::timeout(self.max_wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => {
                crate::metrics::record_admission_wait(started.elapsed());
                Ok(Admitted { _permit: permit })
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
        Some(Admitted { _permit: permit })
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
}
