//! The connection to the engine (DOCKER_HOST or the local socket), negotiated down to
//! the engine's API version so that older engines work.

use bollard::Docker;

use crate::SandboxError;

pub async fn connect_docker() -> Result<Docker, SandboxError> {
    let docker = Docker::connect_with_local_defaults()
        .map_err(|e| SandboxError::DockerUnavailable(e.to_string()))?;
    let docker = docker
        .negotiate_version()
        .await
        .map_err(|e| SandboxError::DockerUnavailable(e.to_string()))?;
    docker
        .ping()
        .await
        .map_err(|e| SandboxError::DockerUnavailable(e.to_string()))?;
    Ok(docker)
}

/// How long a check of "is the engine still there?" may take.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether the engine answers a ping: when something broke under a sandbox, this tells
/// the engine going away (a 503 for the client) from the sandbox breaking.
pub(crate) async fn engine_answers(docker: &Docker) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, docker.ping()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
    }
}

/// `err` as it is when the engine answers, else the engine's absence, which is what the
/// caller must hear about.
pub(crate) async fn blame_the_engine(docker: &Docker, err: SandboxError) -> SandboxError {
    if err.is_unavailable() {
        return err;
    }
    match engine_answers(docker).await {
        Ok(()) => err,
        Err(why) => SandboxError::DockerUnavailable(format!("{why} ({err})")),
    }
}

/// Engine facts for /health and `runbox doctor`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DockerStatus {
    pub reachable: bool,
    pub version: Option<String>,
    pub api_version: Option<String>,
    pub error: Option<String>,
}

pub async fn docker_status(docker: &Docker) -> DockerStatus {
    let probe = tokio::time::timeout(std::time::Duration::from_secs(3), docker.version()).await;
    match probe {
        Ok(Ok(version)) => DockerStatus {
            reachable: true,
            version: version.version,
            api_version: version.api_version,
            error: None,
        },
        Ok(Err(err)) => DockerStatus {
            reachable: false,
            version: None,
            api_version: None,
            error: Some(err.to_string()),
        },
        Err(_) => DockerStatus {
            reachable: false,
            version: None,
            api_version: None,
            error: Some("the engine did not answer within 3 s".into()),
        },
    }
}

/// The OCI runtimes the engine knows (`runc`, and `runsc` when gVisor is installed).
pub async fn docker_runtimes(docker: &Docker) -> Vec<String> {
    match docker.info().await {
        Ok(info) => {
            let mut names: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
            names.sort();
            names
        }
        Err(_) => Vec::new(),
    }
}
