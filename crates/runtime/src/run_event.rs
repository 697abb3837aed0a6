//! What a surface receives while a run streams (the relay that makes these from the
//! sandbox's events is the run pipeline's, `Runner::relayed`).

use crate::outputs::OutputView;

/// What a surface receives while a run streams.
#[derive(Clone, Debug)]
pub enum RunEvent {
    Stdout(String),
    Stderr(String),
    /// A display item, its images stored.
    Display(OutputView),
}
