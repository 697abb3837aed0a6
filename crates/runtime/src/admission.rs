//! Admission control: at most `admission.max_concurrent_runs` runs execute at once; a
//! request that cannot start within `admission.max_wait` is answered 504 instead of
//! waiting forever.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
    /// Requests placed here because a slot was free, not admitted yet: they count as
    /// taking a slot, so that a burst is not all placed on the same free one.
    reserved: Arc<AtomicUsize>,
}

/// A free slot promised to one request until it is admitted (or ends without).
pub struct Reserved {
    reserved: Arc<AtomicUsize>,
    held: AtomicBool,
}

tokio::task_local! {
    /// The reservation of the request this task serves.
    static RESERVED: Arc<Reserved>;
}

impl Reserved {
    fn release(&self) {
        if self.held.swap(false, Ordering::AcqRel) {
            self.reserved.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Runs `serve`, the request this slot was reserved for: its admission takes the
    /// reservation's place; if it never gets there, the reservation ends with `serve`.
    pub async fn during<F: Future>(self, serve: F) -> F::Output {
        let reserved = Arc::new(self);
        RESERVED.scope(reserved.clone(), serve).await
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.release();
    }
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
            reserved: Arc::default(),
        }
    }

    /// A slot for a request about to be admitted, when one is free and not promised to
    /// another request already.
    pub fn reserve(&self) -> Option<Reserved> {
        let mut reserved = self.reserved.load(Ordering::Acquire);
        loop {
            if self.slots.available_permits() <= reserved {
                return None;
            }
            match self.reserved.compare_exchange(
                reserved,
                reserved + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Some(Reserved {
                        reserved: self.reserved.clone(),
                        held: AtomicBool::new(true),
                    })
                }
                Err(now) => reserved = now,
            }
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
        let _ = RESERVED.try_with(|reserved| reserved.release());
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
    /// A slot promised to a request placed here is not free for the queue.
    pub fn try_admit(&self) -> Option<Admitted> {
        if self.slots.available_permits() <= self.reserved.load(Ordering::Acquire) {
            return None;
        }
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

    #[tokio::test]
    async fn a_free_slot_is_promised_once_until_its_request_is_admitted() {
        let admission = Admission::new(2, Duration::from_millis(50));
        let first = admission.reserve().expect("a slot is free");
        let second = admission.reserve().expect("another is free");
        assert!(admission.reserve().is_none(), "both are promised");
        drop(second);
        let second = admission.reserve().expect("given back when dropped");
        let admitted = first
            .during(async { admission.admit().await.expect("admitted") })
            .await;
        assert!(
            admission.reserve().is_none(),
            "one running, one promised: nothing free"
        );
        drop(second);
        assert!(admission.reserve().is_some());
        drop(admitted);
    }
}
