//! The count of sandboxes running code right now (one-shot runs and open sessions),
//! for status and metrics.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Counts sandboxes running code; decremented when dropped.
pub(crate) struct InUse(Arc<AtomicUsize>);

impl InUse {
    pub(crate) fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        InUse(counter.clone())
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
