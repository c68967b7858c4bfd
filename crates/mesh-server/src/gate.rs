//! Each protocol's cap on open connections, and TLS on the way in.
//!
//! Every listener (HTTP, Postgres, Flight SQL) accepts through a [`Gate`]:
//! a connection holds one of its protocol's permits for as long as it is
//! open ([`Admitted`] carries it). A connection over the cap is answered
//! the way its protocol expects — HTTP `503` with a problem document,
//! Postgres `53300` — or, for Flight SQL, closed at once, which gRPC
//! clients report as `UNAVAILABLE` (try again later). Refusing is bounded
//! too: past [`MAX_REFUSING`] refusals under way, or after
//! [`REFUSAL_DEADLINE`], a connection is closed unanswered, so a flood of
//! connections holds neither tasks nor memory.
//!
//! TLS handshakes (HTTP and Flight; Postgres negotiates TLS inside its
//! own protocol, in `wire`) run in their own tasks with a deadline, and a
//! client has [`FIRST_REQUEST`] to send its first bytes after connecting
//! (Postgres: `limits.pg_startup_timeout`), so connecting and saying
//! nothing cannot hold a slot.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::Problem;

/// How long a client has to finish its TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// How long an HTTP or Flight client has, once connected (and through
/// TLS), to send its first bytes.
pub const FIRST_REQUEST: Duration = Duration::from_secs(10);
/// Most refusals under way at once, per protocol.
pub const MAX_REFUSING: usize = 64;
/// Longest one refusal may take, handshake and answer included.
pub const REFUSAL_DEADLINE: Duration = Duration::from_secs(5);
/// Most of an HTTP request read before answering `503`.
const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// How a protocol refuses a connection over its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `503 Service Unavailable` with a problem document.
    Http,
    /// An `ErrorResponse` with SQLSTATE `53300`.
    Postgres,
    /// Closed unanswered (gRPC clients see `UNAVAILABLE`).
    Close,
}

/// One protocol's way in: its cap and, for HTTP and Flight, its TLS.
pub struct Gate {
    protocol: &'static str,
    cap: usize,
    open: Arc<Semaphore>,
    refusing: Arc<Semaphore>,
    refusal: Refusal,
    tls: Option<TlsAcceptor>,
    first_request: Option<Duration>,
}

impl Gate {
    /// A gate letting at most `cap` connections of `protocol` in at once.
    pub fn new(protocol: &'static str, cap: usize, refusal: Refusal) -> Self {
        let cap = cap.max(1);
        Gate {
            protocol,
            cap,
            open: Arc::new(Semaphore::new(cap)),
            refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
            refusal,
            tls: None,
            first_request: None,
        }
    }

    /// A client must send its first bytes within `deadline` of being let
    /// in, or its connection fails.
    pub fn with_first_request(mut self, deadline: Duration) -> Self {
        self.first_request = Some(deadline);
        self
    }

    /// Connections must complete a TLS handshake with `acceptor` before
    /// they are handed out.
    pub fn with_tls(mut self, acceptor: Option<TlsAcceptor>) -> Self {
        self.tls = acceptor;
        self
    }

    /// Accepts connections on `listener` until `stop`, handing out those
    /// let in (and, with TLS, whose handshake succeeded).
    pub fn incoming(
        self,
        listener: TcpListener,
        stop: CancellationToken,
    ) -> tokio::sync::mpsc::Receiver<Admitted> {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (socket, peer) = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors, say: back off briefly.
                            tracing::warn!(error = %e, "cannot accept a connection");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let _ = socket.set_nodelay(true);
                let first = self.first_request;
                let Ok(permit) = self.open.clone().try_acquire_owned() else {
                    self.refuse(socket, peer);
                    continue;
                };
                match &self.tls {
                    None => {
                        let admitted = Admitted::new(Conn::Plain(socket), peer, permit, first);
                        if tx.send(admitted).await.is_err() {
                            return;
                        }
                    }
                    Some(acceptor) => {
                        let (acceptor, tx) = (acceptor.clone(), tx.clone());
                        tokio::spawn(async move {
                            match tokio::time::timeout(HANDSHAKE, acceptor.accept(socket)).await {
                                Ok(Ok(secured)) => {
                                    let io = Conn::Tls(Box::new(secured));
                                    let admitted = Admitted::new(io, peer, permit, first);
                                    let _ = tx.send(admitted).await;
                                }
                                Ok(Err(e)) => {
                                    tracing::info!(%peer, error = %e, "TLS handshake failed")
                                }
                                Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                            }
                        });
                    }
                }
            }
        });
        rx
    }

    /// Answers a connection over the cap, within the refusal bounds.
    fn refuse(&self, socket: TcpStream, peer: SocketAddr) {
        let protocol = self.protocol;
        tracing::warn!(%peer, protocol, cap = self.cap, "connection refused: too many connections");
        let Ok(slot) = self.refusing.clone().try_acquire_owned() else {
            return;
        };
        let (refusal, cap, tls) = (self.refusal, self.cap, self.tls.clone());
        tokio::spawn(async move {
            let answer = async move {
                match (refusal, tls) {
                    (Refusal::Close, _) => Ok(()),
                    (Refusal::Postgres, _) => {
                        let mut socket = socket;
                        crate::wire::too_many_connections(&mut socket).await
                    }
                    (Refusal::Http, None) => too_many_http(socket, cap).await,
                    (Refusal::Http, Some(acceptor)) => {
                        too_many_http(acceptor.accept(socket).await?, cap).await
                    }
                }
            };
            let _ = tokio::time::timeout(REFUSAL_DEADLINE, answer).await;
            drop(slot);
        });
    }
}

/// `503` for an HTTP connection over the cap. The request head is read
/// first: closing a socket with unread bytes resets it, and the client
/// would lose the answer.
async fn too_many_http<S>(mut client: S, cap: usize) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut head = vec![0u8; MAX_REQUEST_HEAD];
    let mut read = 0;
    while read < head.len() {
        let n = client.read(&mut head[read..]).await?;
        if n == 0 {
            break;
        }
        read += n;
        if head[..read].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let body = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "too-many-connections",
        format!("too many HTTP connections are open (the cap is {cap})"),
    )
    .hint("try again later; the server's cap is `limits.http_connections`")
    .body()
    .to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    client.write_all(response.as_bytes()).await?;
    client.shutdown().await
}

/// A connection as accepted: plain, or after its TLS handshake.
enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// A connection let in; it holds its protocol's permit until dropped.
pub struct Admitted {
    io: Conn,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
    /// Until the first bytes arrive: when the client's time is up.
    first: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Admitted {
    fn new(
        io: Conn,
        peer: SocketAddr,
        permit: OwnedSemaphorePermit,
        first: Option<Duration>,
    ) -> Self {
        Admitted {
            io,
            peer,
            _permit: permit,
            first: first.map(|d| Box::pin(tokio::time::sleep(d))),
        }
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn tcp(&self) -> &TcpStream {
        match &self.io {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref().0,
        }
    }
}

/// Tonic asks each connection who it is.
impl tonic::transport::server::Connected for Admitted {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        tonic::transport::server::TcpConnectInfo {
            local_addr: self.tcp().local_addr().ok(),
            remote_addr: Some(self.peer),
        }
    }
}

impl AsyncRead for Admitted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let read = match &mut self.io {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        if let Some(deadline) = self.first.as_mut() {
            let got_bytes = matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before;
            if got_bytes {
                self.first = None;
            } else if read.is_pending() && deadline.as_mut().poll(cx).is_ready() {
                tracing::info!(peer = %self.peer, "connection closed: nothing sent in time");
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client sent nothing in time",
                )));
            }
        }
        read
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.io {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.io {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.io {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.io {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// The HTTP server's listener: connections let in through a gate.
pub struct HttpListener {
    pub(crate) rx: tokio::sync::mpsc::Receiver<Admitted>,
    pub(crate) local: SocketAddr,
}

/// The client's address, for handlers (`ConnectInfo<Peer>`).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl axum::serve::Listener for HttpListener {
    type Io = Admitted;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => {
                let peer = Peer(c.peer);
                (c, peer)
            }
            // The gate stopped: the server is stopping.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Peer(self.local))
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, HttpListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, HttpListener>) -> Self {
        *stream.remote_addr()
    }
}

/// The stream of admitted connections tonic serves.
pub fn tonic_incoming(
    rx: tokio::sync::mpsc::Receiver<Admitted>,
) -> impl futures::Stream<Item = std::io::Result<Admitted>> {
    futures::stream::unfold(rx, |mut rx| async move {
        let admitted = rx.recv().await?;
        Some((Ok(admitted), rx))
    })
}
