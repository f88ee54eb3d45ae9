//! The pieces the examples share: a flaky dependency and a hand-written gRPC service.
//!
//! It lives with tower-cutout's gRPC tests (so the published crate's tests are whole) and
//! the tower examples compile it in with `#[path]` (`examples/tower/src/lib.rs`), so the
//! examples and the tests run one `quotes.Quotes` definition. It must stand alone: no
//! `crate::` or `super::` paths, and only dependencies both packages have.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tonic::Status;
use tonic::body::Body;
use tonic::server::NamedService;
use tower::Service;

/// A dependency that can be switched to failing, and counts the calls that reach it.
#[derive(Debug, Clone, Default)]
pub struct Flaky {
    failing: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
}

impl Flaky {
    /// Makes every call fail (`true`) or succeed (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Counts a call; whether it fails.
    pub fn hit(&self) -> bool {
        self.hits.fetch_add(1, Ordering::SeqCst);
        self.failing.load(Ordering::SeqCst)
    }

    /// The calls that reached the dependency.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// The request of `quotes.Quotes/Get`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct QuoteRequest {
    /// The ticker symbol.
    #[prost(string, tag = "1")]
    pub symbol: String,
}

/// The reply of `quotes.Quotes/Get`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct QuoteReply {
    /// The price in cents.
    #[prost(uint64, tag = "1")]
    pub cents: u64,
}

/// The method's path.
pub const GET_QUOTE: &str = "/quotes.Quotes/Get";

/// The `quotes.Quotes` server: `Get` answers a made-up price, 4200 cents plus one per letter
/// of the symbol (so a reply shows the request arrived whole), or `UNAVAILABLE` while its
/// database (a [`Flaky`]) fails.
#[derive(Debug, Clone, Default)]
pub struct QuoteServer {
    /// The database behind the service.
    pub database: Flaky,
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
        let database = self.database.clone();
        Box::pin(async move {
            if request.uri().path() != GET_QUOTE {
                return Ok(Status::unimplemented(request.uri().path().to_owned()).into_http());
            }
            let handler = tower::service_fn(move |req: tonic::Request<QuoteRequest>| {
                let failed = database.hit();
                async move {
                    if failed {
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

/// Calls `quotes.Quotes/Get` through any gRPC transport (a channel, or a channel behind
/// layers).
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
    let path = http::uri::PathAndQuery::from_static(GET_QUOTE);
    let codec = tonic_prost::ProstCodec::<QuoteRequest, QuoteReply>::default();
    let reply = client.unary(request, path, codec).await?;
    Ok(reply.into_inner().cents)
}
