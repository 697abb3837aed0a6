//! Labels on every container runbox creates, so that nothing it starts is ever lost.

pub const MANAGED: &str = "runbox.managed";
pub const INSTANCE: &str = "runbox.instance";
pub const KIND: &str = "runbox.kind";
/// The host port a container of the http transport holds, for the start-up sweep.
pub const HOST_PORT: &str = "runbox.port";
/// Set on images built from docker/, whose agent speaks runbox's protocol.
pub const AGENT: &str = "runbox.agent";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerKind {
    /// Created ahead of demand for the warm pool.
    Pool,
    /// Created on demand because the pool was empty.
    OnDemand,
    /// Lives as long as a stateful session.
    Session,
    /// Installs dependencies with network access, then is committed.
    Build,
    /// A bare container `runbox bench` measures the engine with (no agent).
    Baseline,
}

impl ContainerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerKind::Pool => "pool",
            ContainerKind::OnDemand => "on-demand",
            ContainerKind::Session => "session",
            ContainerKind::Build => "build",
            ContainerKind::Baseline => "baseline",
        }
    }
}
