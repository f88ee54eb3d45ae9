//! A hand-written gRPC service, no protoc: `quotes.Quotes/Get`, with prost messages derived
//! by hand, tonic's generic server (`tonic::server::Grpc`) and client
//! (`tonic::client::Grpc`), and `tonic_prost::ProstCodec`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tonic::Status;
use tonic::body::Body;
use tonic::server::NamedService;
use tower::Service;

#[derive(Clone, PartialEq, prost::Message)]
pub struct QuoteRequest {
    #[prost(string, tag = "1")]
    pub symbol: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct QuoteReply {
    #[prost(uint64, tag = "1")]
    pub cents: u64,
}

pub const GET: &str = "/quotes.Quotes/Get";

/// Answers `Get` with 4200 cents, or `UNAVAILABLE` while `failing`; counts the calls that
/// reach it.
#[derive(Clone, Default)]
pub struct QuoteServer {
    pub failing: Arc<AtomicBool>,
    pub hits: Arc<AtomicUsize>,
}

impl QuoteServer {
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

impl NamedService for QuoteServer {
    const NAME: &'static str = "quotes.Quotes";
}

impl Service<http::Request<Body>> for QuoteServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            if request.uri().path() != GET {
                return Ok(Status::unimplemented(request.uri().path().to_owned()).into_http());
            }
            let handler = tower::service_fn(move |req: tonic::Request<QuoteRequest>| {
                let this = this.clone();
                async move {
                    this.hits.fetch_add(1, Ordering::SeqCst);
                    if this.failing.load(Ordering::SeqCst) {
                        Err(Status::unavailable("quote database down"))
                    } else {
                        let cents = 4200 + req.get_ref().symbol.len() as u64;
                        Ok(tonic::Response::new(QuoteReply { cents }))
                    }
                }
            });
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<
                QuoteReply,
                QuoteRequest,
            >::default());
            Ok(grpc.unary(handler, request).await)
        })
    }
}

/// Calls `Get` through any gRPC transport service.
pub async fn get_quote<T>(client: &mut tonic::client::Grpc<T>, symbol: &str) -> Result<u64, Status>
where
    T: tonic::client::GrpcService<Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<tonic::codegen::StdError>,
{
    client
        .ready()
        .await
        .map_err(|e| Status::unknown(format!("service was not ready: {}", e.into())))?;
    let request = tonic::Request::new(QuoteRequest {
        symbol: symbol.to_owned(),
    });
    let path = http::uri::PathAndQuery::from_static(GET);
    let codec = tonic_prost::ProstCodec::<QuoteRequest, QuoteReply>::default();
    let reply = client.unary(request, path, codec).await?;
    Ok(reply.into_inner().cents)
}

/// A listener on 127.0.0.1, any port.
pub async fn listen() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

pub async fn channel(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}
