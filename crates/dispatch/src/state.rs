//! What every handler shares.

use std::sync::Arc;

use runbox_core::Config;
use runbox_runtime::Runtime;
use runbox_sandbox::Sandboxes;
use runbox_store::Store;

use crate::auth::Authenticator;
use crate::functions::Functions;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub sandboxes: Sandboxes,
    pub store: Store,
    pub auth: Arc<Authenticator>,
    /// Admission, the run pipeline and sessions.
    pub runtime: Runtime,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Running calls of stored functions, environment builds, async tasks.
    pub functions: Functions,
}

impl axum::extract::FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}
