//! The HTTP client replicas send each other requests with (`forward.rs`).

use std::time::Duration;

/// How long reaching a peer may take before the request is served here instead.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Beyond the longest run and its wait for a slot, how long a peer may stay silent.
const SILENCE_MARGIN: Duration = Duration::from_secs(30);

/// The HTTP client replicas send each other requests with.
#[derive(Clone)]
pub struct PeerClient {
    pub(crate) client: reqwest::Client,
}

impl PeerClient {
    pub fn new(config: &runbox_core::Config) -> Result<Self, reqwest::Error> {
        let silence =
            config.limits.max_timeout.get() + config.admission.max_wait.get() + SILENCE_MARGIN;
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(silence)
            .tcp_nodelay(true)
            .build()?;
        Ok(PeerClient { client })
    }
}
