//! A forwarding proxy a test starts in front of a daemon (the Docker engine's socket,
//! PostgreSQL's port) and can cut and restore, so that the daemon seems to go away and
//! come back while the real one is never touched.

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug)]
enum Endpoint {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

pub struct Proxy {
    listen: Endpoint,
    target: Endpoint,
    running: Option<(CancellationToken, JoinHandle<()>)>,
}

impl Proxy {
    /// Listens on the Unix socket `listen` and forwards to the one at `target`.
    pub async fn unix(listen: PathBuf, target: PathBuf) -> Proxy {
        let mut proxy = Proxy {
            listen: Endpoint::Unix(listen),
            target: Endpoint::Unix(target),
            running: None,
        };
        proxy.start().await;
        proxy
    }

    /// Listens on a free port of 127.0.0.1 and forwards to `target`.
    pub async fn tcp(target: SocketAddr) -> Proxy {
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
            .local_addr()
            .expect("address")
            .port();
        let mut proxy = Proxy {
            listen: Endpoint::Tcp(SocketAddr::from(([127, 0, 0, 1], port))),
            target: Endpoint::Tcp(target),
            running: None,
        };
        proxy.start().await;
        proxy
    }

    pub fn port(&self) -> u16 {
        match &self.listen {
            Endpoint::Tcp(address) => address.port(),
            Endpoint::Unix(_) => 0,
        }
    }

    /// Listens again (on the same address) and forwards new connections.
    pub async fn start(&mut self) {
        assert!(self.running.is_none(), "the proxy runs already");
        let cancel = CancellationToken::new();
        let target = self.target.clone();
        let stop = cancel.clone();
        let task = match &self.listen {
            Endpoint::Unix(path) => {
                let _ = std::fs::remove_file(path);
                let listener = UnixListener::bind(path).expect("bind the unix socket");
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            () = stop.cancelled() => return,
                            accepted = listener.accept() => {
                                let Ok((client, _)) = accepted else { return };
                                tokio::spawn(forward(client, target.clone(), stop.clone()));
                            }
                        }
                    }
                })
            }
            Endpoint::Tcp(address) => {
                let listener = bind_again(*address).await;
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            () = stop.cancelled() => return,
                            accepted = listener.accept() => {
                                let Ok((client, _)) = accepted else { return };
                                tokio::spawn(forward(client, target.clone(), stop.clone()));
                            }
                        }
                    }
                })
            }
        };
        self.running = Some((cancel, task));
    }

    /// Closes the listener and cuts every connection it forwarded.
    pub async fn stop(&mut self) {
        if let Some((cancel, task)) = self.running.take() {
            cancel.cancel();
            let _ = task.await;
        }
        if let Endpoint::Unix(path) = &self.listen {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some((cancel, _)) = self.running.take() {
            cancel.cancel();
        }
    }
}

async fn bind_again(address: SocketAddr) -> TcpListener {
    // The port was just closed; the kernel may hold it for a moment.
    for _ in 0..100 {
        if let Ok(listener) = TcpListener::bind(address).await {
            return listener;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("cannot listen on {address} again");
}

async fn forward<C>(mut client: C, target: Endpoint, stop: CancellationToken)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let copy = async {
        match target {
            Endpoint::Unix(path) => {
                let Ok(mut upstream) = UnixStream::connect(path).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
            Endpoint::Tcp(address) => {
                let Ok(mut upstream) = TcpStream::connect(address).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        }
    };
    // Cancelled: both ends are dropped, i.e. the connection is cut.
    tokio::select! {
        () = stop.cancelled() => {}
        () = copy => {}
    }
}
