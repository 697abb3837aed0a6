//! Host ports of the http transport, leased from `sandbox.port_range`. A lease is
//! returned when its container is gone (see `ContainerGuard`).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use runbox_core::config::PortRange;

use crate::SandboxError;

#[derive(Debug)]
struct State {
    leased: BTreeSet<u16>,
    /// Where the next search starts, so that a just-freed port is not reused at once
    /// (the kernel may still hold it briefly).
    cursor: u16,
}

#[derive(Clone, Debug)]
pub struct PortLeases {
    range: PortRange,
    state: Arc<Mutex<State>>,
}

impl PortLeases {
    pub fn new(range: PortRange) -> Self {
        PortLeases {
            range,
            state: Arc::new(Mutex::new(State {
                leased: BTreeSet::new(),
                cursor: range.start,
            })),
        }
    }

    pub fn lease(&self) -> Result<PortLease, SandboxError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let span = self.range.len();
        for offset in 0..span {
            let candidate = self.range.start
                + ((usize::from(state.cursor - self.range.start) + offset) % span) as u16;
            if state.leased.insert(candidate) {
                state.cursor = if candidate == self.range.end {
                    self.range.start
                } else {
                    candidate + 1
                };
                return Ok(PortLease {
                    port: candidate,
                    owner: self.clone(),
                });
            }
        }
        tracing::warn!(
            start = self.range.start,
            end = self.range.end,
            "port range exhausted; raise sandbox.port_range or lower concurrency"
        );
        Err(SandboxError::PortsExhausted {
            start: self.range.start,
            end: self.range.end,
        })
    }

    pub fn in_use(&self) -> usize {
        self.state
            .lock()
            .map(|s| s.leased.len())
            .unwrap_or_default()
    }

    fn release(&self, port: u16) {
        if let Ok(mut state) = self.state.lock() {
            state.leased.remove(&port);
        }
    }
}

#[derive(Debug)]
pub struct PortLease {
    port: u16,
    owner: PortLeases,
}

impl PortLease {
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.owner.release(self.port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_exclusive_and_come_back() {
        let leases = PortLeases::new(PortRange {
            start: 5000,
            end: 5001,
        });
        let a = leases.lease().expect("first");
        let b = leases.lease().expect("second");
        assert_ne!(a.port(), b.port());
        assert!(matches!(
            leases.lease(),
            Err(SandboxError::PortsExhausted { .. })
        ));
        drop(a);
        assert_eq!(leases.in_use(), 1);
        let c = leases.lease().expect("freed port is leased again");
        assert_ne!(c.port(), b.port());
    }
}
