//! The HTTP client replicas send each other requests with (`routes/forward.rs`,
//! `mcp/holder.rs`), and the headers that say a replica sent one.

use std::time::Duration;

use axum::http::HeaderName;

/// The replica that forwarded a request.
pub const FORWARDED_BY: HeaderName = HeaderName::from_static("runbox-forwarded-by");
/// `<unix seconds>:<hex HMAC>` over the request, made with the cluster's secret.
pub const FORWARD_PROOF: HeaderName = HeaderName::from_static("runbox-forward-proof");
/// On an answer that came from a peer: the replica that served it.
pub const FORWARDED_TO: HeaderName = HeaderName::from_static("runbox-forwarded-to");

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
