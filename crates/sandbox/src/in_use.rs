//! The count of sandboxes running code right now (one-shot runs and open sessions),
//! for status and metrics: in all, and on each engine (which also reserves the room a
//! run takes on its engine).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Counts sandboxes running code; decremented when dropped.
pub(crate) struct InUse(Vec<Arc<AtomicUsize>>);

impl InUse {
    pub(crate) fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        InUse(vec![counter.clone()])
    }

    /// Counts one more on `counter` unless it holds `capacity` already.
    pub(crate) fn try_enter(counter: &Arc<AtomicUsize>, capacity: usize) -> Option<Self> {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < capacity).then_some(n + 1)
            })
            .ok()?;
        Some(InUse(vec![counter.clone()]))
    }

    /// Counts on `counter` too, for as long as this lives.
    pub(crate) fn and(mut self, counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        self.0.push(counter.clone());
        self
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        for counter in &self.0 {
            counter.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
