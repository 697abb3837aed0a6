//! A Docker engine that fails on demand, for tests: a proxy on a Unix socket in front of
//! the real engine's socket that, while told to, answers `POST /containers/create` with
//! a 500 instead of passing it on. The real engine is never touched. runbox reaches it
//! through `DOCKER_HOST=unix://<socket>`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

const MAX_HEAD: usize = 64 * 1024;

pub struct DockerProxy {
    pub socket: PathBuf,
    failing: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl DockerProxy {
    pub async fn start() -> DockerProxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&socket).expect("bind the proxy socket");
        let failing = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicUsize::new(0));
        let upstream = real_socket();
        let task = tokio::spawn({
            let failing = failing.clone();
            let refused = refused.clone();
            async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        return;
                    };
                    tokio::spawn(serve(
                        client,
                        upstream.clone(),
                        failing.clone(),
                        refused.clone(),
                    ));
                }
            }
        });
        DockerProxy {
            socket,
            failing,
            refused,
            task,
            _dir: dir,
        }
    }

    /// The value of DOCKER_HOST that reaches this proxy.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// From now on, container creations fail (true) or pass (false).
    pub fn fail_creates(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// How many creations were refused so far.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn real_socket() -> PathBuf {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|host| host.strip_prefix("unix://").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"))
}

/// One client connection: its first request decides; every request is made the last of
/// its connection (`Connection: close`), so that each one passes through here.
async fn serve(
    mut client: UnixStream,
    upstream: PathBuf,
    failing: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
) {
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(end) = find(&buffer, b"\r\n\r\n") {
            break end + 4;
        }
        if buffer.len() > MAX_HEAD {
            return;
        }
        let mut chunk = [0u8; 8192];
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let request_line = head.lines().next().unwrap_or_default().to_string();
    if failing.load(Ordering::SeqCst)
        && request_line.starts_with("POST ")
        && request_line.contains("/containers/create")
    {
        refused.fetch_add(1, Ordering::SeqCst);
        let body = r#"{"message":"injected failure: the engine cannot create containers"}"#;
        let response = format!(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = client.write_all(response.as_bytes()).await;
        let _ = client.shutdown().await;
        return;
    }
    let Ok(mut server) = UnixStream::connect(&upstream).await else {
        return;
    };
    let upgrade = head.to_ascii_lowercase().contains("\r\nupgrade:");
    let forwarded = if upgrade { head } else { close_after(&head) };
    if server.write_all(forwarded.as_bytes()).await.is_err()
        || server.write_all(&buffer[head_end..]).await.is_err()
    {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

/// The request head with `Connection: close` in place of any Connection header.
fn close_after(head: &str) -> String {
    let mut lines: Vec<&str> = head
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    format!("{}\r\n\r\n", lines.join("\r\n"))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
