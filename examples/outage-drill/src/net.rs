//! Serving a router and calling it: over TCP on `127.0.0.1:0`, or over in-memory pipes.
//!
//! The drill runs over TCP. The tests run the very same services over in-memory pipes
//! ([`Transport::Memory`]) so that they can run on paused tokio time: with sockets, a
//! paused runtime may advance its clock while a loopback packet is still on its way, and
//! fire a timeout that real time never would. Either way a [`Server`] counts the
//! connections it holds open.

use std::error::Error;
use std::fmt;
use std::future::{Future, Ready, ready};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

/// The error type of every client stack in the drill.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// An HTTP client whose responses arrive with their whole body read.
pub type HttpClient = BoxCloneSyncService<Request<Full<Bytes>>, Response<Bytes>, BoxError>;

/// How a [`Server`] is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP on `127.0.0.1`, on a port the system picks.
    Tcp,
    /// In-memory pipes (`tokio::io::duplex`), for tests on paused time.
    Memory,
}

/// Open connections: now and at the peak.
#[derive(Debug, Default)]
pub struct Gauge {
    now: AtomicU64,
    peak: AtomicU64,
}

impl Gauge {
    /// Counts one more, and returns a guard that counts it out when dropped.
    pub fn enter(self: &Arc<Self>) -> GaugeGuard {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        GaugeGuard(self.clone())
    }

    /// The count now.
    pub fn now(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    /// The highest count seen.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::SeqCst)
    }
}

/// Counts out of a [`Gauge`] when dropped.
#[derive(Debug)]
pub struct GaugeGuard(Arc<Gauge>);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Where a [`Server`] listens.
#[derive(Debug, Clone)]
enum Endpoint {
    Tcp(SocketAddr),
    Memory(MemoryConnector),
}

/// An HTTP/1 server for an axum router, stopped by [`Server::shutdown`].
#[derive(Debug)]
pub struct Server {
    endpoint: Endpoint,
    connections: Arc<Gauge>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    /// Starts serving `router` on `transport`. Must be called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// When the TCP listener cannot be bound.
    pub async fn start(router: Router, transport: Transport) -> io::Result<Server> {
        let any_port = SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0));
        Server::start_on(router, transport, any_port).await
    }

    /// Starts serving `router` over TCP on `addr` (port 0: a port the system picks).
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// When the listener cannot be bound (the port is in use, say).
    pub async fn bind(router: Router, addr: SocketAddr) -> io::Result<Server> {
        Server::start_on(router, Transport::Tcp, addr).await
    }

    async fn start_on(
        router: Router,
        transport: Transport,
        addr: SocketAddr,
    ) -> io::Result<Server> {
        let connections = Arc::new(Gauge::default());
        let (stop, stopped) = oneshot::channel();
        let (endpoint, task) = match transport {
            Transport::Tcp => {
                let listener = TcpListener::bind(addr).await?;
                let addr = listener.local_addr()?;
                let accept = TcpAccept(listener);
                let task = tokio::spawn(accept_loop(accept, router, connections.clone(), stopped));
                (Endpoint::Tcp(addr), task)
            }
            Transport::Memory => {
                let (tx, rx) = mpsc::unbounded_channel();
                let accept = MemoryAccept(rx);
                let task = tokio::spawn(accept_loop(accept, router, connections.clone(), stopped));
                (Endpoint::Memory(MemoryConnector { tx }), task)
            }
        };
        Ok(Server {
            endpoint,
            connections,
            stop: Some(stop),
            task,
        })
    }

    /// The base URI to put in front of paths: `http://127.0.0.1:PORT` or `http://memory`.
    pub fn base_uri(&self) -> String {
        match &self.endpoint {
            Endpoint::Tcp(addr) => format!("http://{addr}"),
            Endpoint::Memory(_) => "http://memory".to_owned(),
        }
    }

    /// The TCP address, when serving over TCP.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.endpoint {
            Endpoint::Tcp(addr) => Some(*addr),
            Endpoint::Memory(_) => None,
        }
    }

    /// A pooling HTTP/1 client that reaches this server.
    pub fn client(&self) -> HttpClient {
        match &self.endpoint {
            Endpoint::Tcp(_) => tcp_client(),
            Endpoint::Memory(connector) => boxed_client(connector.clone()),
        }
    }

    /// The connections this server holds open.
    pub fn connections(&self) -> &Arc<Gauge> {
        &self.connections
    }

    /// Stops accepting, closes every connection and waits until all of them are gone.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A pooling HTTP/1 client over TCP, for any `http://` URI.
pub fn tcp_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    boxed_client(connector)
}

fn boxed_client<C>(connector: C) -> HttpClient
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let client: Client<C, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector);
    BoxCloneSyncService::new(client.map_err(BoxError::from).and_then(
        |response: Response<hyper::body::Incoming>| async move {
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok(Response::from_parts(parts, body))
        },
    ))
}

/// Something that hands out new connections.
trait Accept: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&mut self) -> impl Future<Output = Option<Self::Io>> + Send;
}

struct TcpAccept(TcpListener);

impl Accept for TcpAccept {
    type Io = tokio::net::TcpStream;
    async fn accept(&mut self) -> Option<Self::Io> {
        loop {
            match self.0.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    return Some(stream);
                }
                // Out of file descriptors and the like: back off a little and go on.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }
}

struct MemoryAccept(mpsc::UnboundedReceiver<DuplexStream>);

impl Accept for MemoryAccept {
    type Io = DuplexStream;
    async fn accept(&mut self) -> Option<Self::Io> {
        self.0.recv().await
    }
}

async fn accept_loop(
    mut accept: impl Accept,
    router: Router,
    connections: Arc<Gauge>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut open = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            Some(_) = open.join_next(), if !open.is_empty() => {}
            io = accept.accept() => {
                let Some(io) = io else { break };
                let guard = connections.enter();
                let service = TowerToHyperService::new(router.clone());
                open.spawn(async move {
                    let _guard = guard;
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .serve_connection(TokioIo::new(io), service)
                        .await;
                });
            }
        }
    }
    open.shutdown().await;
}

/// Connects a client to a [`Transport::Memory`] server: each connection is a fresh duplex
/// pipe whose other end goes to the server's accept loop.
#[derive(Clone)]
struct MemoryConnector {
    tx: mpsc::UnboundedSender<DuplexStream>,
}

impl fmt::Debug for MemoryConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryConnector").finish_non_exhaustive()
    }
}

impl tower::Service<Uri> for MemoryConnector {
    type Response = TokioIo<MemoryStream>;
    type Error = io::Error;
    type Future = Ready<io::Result<Self::Response>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let (client, server) = tokio::io::duplex(64 * 1024);
        ready(match self.tx.send(server) {
            Ok(()) => Ok(TokioIo::new(MemoryStream(client))),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "the in-memory server has stopped",
            )),
        })
    }
}

/// The client end of an in-memory connection.
#[derive(Debug)]
struct MemoryStream(DuplexStream);

impl Connection for MemoryStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for MemoryStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for MemoryStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Builds a JSON `POST` request.
pub fn post_json(uri: &str, body: &impl serde::Serialize) -> Request<Full<Bytes>> {
    let body = serde_json::to_vec(body).unwrap_or_default();
    let mut request = Request::new(Full::new(Bytes::from(body)));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = uri.parse().unwrap_or_default();
    request.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    request
}

/// Builds a `GET` request.
pub fn get(uri: &str) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(Bytes::new()));
    *request.uri_mut() = uri.parse().unwrap_or_default();
    request
}
