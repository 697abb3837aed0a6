//! Several replicas as one service: where a request is served ([`placement`]), the proof
//! a forwarded request carries ([`proof`]), limits that hold across the replicas
//! ([`leases`]) and the sessions' owners ([`session_directory`]). The HTTP surface asks
//! `Runtime` (`placing.rs`) and does the sending itself.

pub mod leases;
pub mod placement;
pub mod proof;
pub(crate) mod session_directory;
pub(crate) mod upkeep;

pub use crate::admission::Reserved;
pub use placement::{Peer, RunPlace, SessionPlace};
pub use proof::{ForwardProof, ForwardedRequest};
