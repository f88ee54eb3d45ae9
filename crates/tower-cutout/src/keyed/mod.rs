//! A breaker per key: per upstream host, per endpoint, per tenant (feature `keyed`).
//!
//! [`KeyedCircuitBreakerLayer`] takes each request's key with a [`KeyExtractor`] (a closure
//! `Fn(&Request) -> Option<Key>`, or [`Authority`] for HTTP: the host a request goes to, as
//! an [`AuthorityKey`]) and guards the call with that key's breaker, from a bounded
//! [`cutout_keyed::KeyedBreakers`] registry. One sick host trips its own breaker; requests
//! to the others still reach the inner service.
//!
//! The fast way holds the registry as a `&'static KeyedBreakers`, made once at start-up
//! with [`KeyedBreakers::leak`](cutout_keyed::KeyedBreakers::leak) (or a `static` in a
//! `std::sync::LazyLock`): a clone of the service (axum clones it per request) copies a
//! pointer, and the response future holds a
//! [`StaticKeyedPermit`](cutout_keyed::StaticKeyedPermit) that borrows the key's breaker,
//! so the closed path writes nothing another thread writes.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_cutout::error::BoxError> {
//! use cutout_keyed::KeyedBreakers;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_cutout::{error::Rejected, keyed::KeyedCircuitBreakerLayer};
//!
//! let hosts: &'static KeyedBreakers<String> =
//!     KeyedBreakers::builder(cutout::CircuitBreaker::builder().failure_threshold(2))
//!         .capacity(10_000)
//!         .build()?
//!         .leak();
//! // Requests are host names here; a real stack keys `http::Request`s by `Authority`.
//! let mut svc = ServiceBuilder::new()
//!     .layer(KeyedCircuitBreakerLayer::new(hosts, |host: &String| Some(host.clone())))
//!     .service_fn(|host: String| async move {
//!         if host == "sick.example" { Err("connection refused") } else { Ok("fine") }
//!     });
//!
//! for _ in 0..2 {
//!     let err = svc.ready().await?.call("sick.example".into()).await.unwrap_err();
//!     assert_eq!(err.to_string(), "connection refused");
//! }
//! let err = svc.ready().await?.call("sick.example".into()).await.unwrap_err();
//! assert!(err.is::<Rejected>(), "sick.example's breaker is open");
//! assert_eq!(svc.ready().await?.call("well.example".into()).await?, "fine");
//! assert_eq!(hosts.len(), 2);
//! # Ok(())
//! # }
//! ```
//!
//! An `Arc<KeyedBreakers>` works the same way
//! (`KeyedCircuitBreakerLayer::new(Arc::new(registry), extractor)`, or
//! [`KeyedCircuitBreakerLayer::from_builder`]) for a registry that must be dropped, at the
//! cost of reference counts every request writes on lines all threads share (see
//! [Costs](#costs) and [`KeyedRegistry`]).
//!
//! # Memory stays bounded
//!
//! The registry holds at most its [capacity](cutout_keyed::KeyedBuilder::capacity) of
//! breakers, however many keys requests bring: a new key at a full registry evicts the
//! breakers used least recently. Only a breaker that is closed and idle is evicted: never
//! one that is open or half-open (its key would lose its protection), and never one with a
//! call in flight (the response future, and then the classifier's
//! [`Recorder`](crate::classify::Recorder), hold the key's breaker until the outcome is
//! recorded). When every breaker is open or busy, a new key is refused rather than growing
//! the registry: the request fails at once with [`error::NoBreaker`] (or the mode's `503` /
//! `UNAVAILABLE`, see [`KeyedReject`]). Call
//! [`evict_idle`](cutout_keyed::KeyedBreakers::evict_idle) on a timer to drop keys that went
//! quiet sooner.
//!
//! # Requests without a key
//!
//! When the extractor returns `None` (with [`Authority`]: a request with no authority in
//! its URI and no valid `Host` header) the request goes to the inner service unprotected:
//! no breaker is asked and nothing is recorded; the classifier still shapes the response.
//! To guard those requests too, return a fallback key from the extractor
//! ([`Authority::fallback`]); they then share that key's breaker.
//!
//! # Fail fast only
//!
//! `poll_ready` is the inner service's own, and a rejection is an already-failed response
//! future from `call` that never calls the inner service. There is no backpressure mode (as
//! [`CircuitBreakerLayer::backpressure`](crate::CircuitBreakerLayer::backpressure) is for
//! the unkeyed layer): readiness belongs to the service, but the breaker belongs to the
//! request's key, which is known only when `call` brings the request. Waiting in
//! `poll_ready` for some key's breaker would hold up requests for every other key behind
//! one sick host. To route around unhealthy endpoints in a load balancer, put an unkeyed
//! [`CircuitBreakerLayer`](crate::CircuitBreakerLayer) on each endpoint's service instead.
//! When a rejected request leaves the inner service ready but uncalled, whatever its
//! `poll_ready` reserved (a `ConcurrencyLimit` permit, say) stays reserved for the next
//! call, as tower allows.
//!
//! # Classification and rejections
//!
//! The layer classifies with the same [`Classify`](crate::classify::Classify) as the unkeyed
//! layer (`Err` is a failure by default; `http::HttpClassifier` and `grpc::GrpcClassifier`
//! work unchanged), and rejects through the same [`crate::reject`] modes, extended by
//! [`KeyedReject`] for a full registry:
//!
//! | mode | a key's breaker refuses | the key gets no breaker (registry full) |
//! |---|---|---|
//! | `RejectWithError` (default) | [`error::Rejected`](crate::error::Rejected) | [`error::NoBreaker`] |
//! | `http::ServiceUnavailable` | `503` with `Retry-After` | `503` |
//! | `grpc::UnavailableResponse` / `grpc::UnavailableError` | `UNAVAILABLE` with pushback | `UNAVAILABLE` |
//!
//! A response future dropped before it finishes (a cancelled call) records
//! [`cutout::Outcome::Ignored`], which frees a half-open probe slot, and releases the key's
//! breaker.
//!
//! # Sharing
//!
//! Every service a layer makes, and every clone of those services, shares the layer's one
//! registry (a `&'static KeyedBreakers` or an `Arc<KeyedBreakers>`). Pass your own registry to
//! [`KeyedCircuitBreakerLayer::new`] to share it with other layers, to watch it
//! (`state`, `len`, `evicted`), or to force a key's breaker open through a
//! [`Lease`](cutout_keyed::Lease).
//! [`ServiceBuilderExt::keyed_circuit_breaker`](crate::ServiceBuilderExt::keyed_circuit_breaker)
//! and `http_keyed_circuit_breaker` (an [`HttpKeyedCircuitBreakerLayer`]) add a layer
//! sharing the registry you pass.
//!
//! # Costs
//!
//! Per keyed call, beyond the unkeyed layer's: the key extraction (with [`Authority`], a
//! reference count and a scan of the authority's bytes; an allocation only for a `Host`
//! header or an authority to clean up), one hash and lock-free lookup (none when the key
//! is the one the calling thread used last: each thread remembers its last key, on either
//! kind of registry; see the `cutout_keyed` crate docs), and the two atomic
//! updates that hold the key's breaker while the call runs, on the calling thread's own
//! stripe of the breaker's user count (see the `cutout_keyed` crate docs). Nothing else
//! allocates once a key's breaker exists.
//!
//! With an `Arc<KeyedBreakers>`, the response future also holds a
//! [`KeyedPermit`](cutout_keyed::KeyedPermit): two reference counts (the key's breaker and
//! its registry entry) incremented and decremented per request, and a clone of the service
//! increments the registry's. Those are cache lines every thread writes, which keeps the
//! `Arc` path from scaling across threads; a `&'static` registry writes none of them. On a
//! loaded 2-core VM (`benches/tower.rs`, fastest tenth of criterion's samples, five runs,
//! one key among 1 001), a request took 49-58 ns through the keyed layer on a `&'static`
//! registry against 58-59 ns on an `Arc` one and 30-31 ns through the unkeyed layer on a
//! `&'static` breaker; with two threads on that one key, 1.02-1.26x the one-thread time
//! per request on the `&'static` registry, 1.65-2.78x on the `Arc` one.
//!
//! The registry's default hasher is foldhash's ([`cutout_keyed::DefaultHashBuilder`],
//! seeded at random), about 15 ns less per lookup among 1 000 keys than SipHash.
//! [`AuthorityKey`] hashes its bytes in one write, so it costs about what a `&str` does; an
//! `http::Request` keyed by [`Authority`] costs more than a `u64` key (the authority's
//! reference count and a longer key to hash). For SipHash's stronger resistance to chosen
//! collisions on keys from untrusted input, pass `std::hash::RandomState::new()` to
//! [`KeyedBuilder::hasher`](cutout_keyed::KeyedBuilder::hasher).

pub mod error;
mod extract;
pub mod future;
mod layer;
mod registry;
mod reject;
mod service;

pub use extract::KeyExtractor;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use extract::{Authority, AuthorityKey};
pub use layer::KeyedCircuitBreakerLayer;
pub use registry::KeyedRegistry;
pub use reject::KeyedReject;
pub use service::KeyedCircuitBreaker;

/// The keyed layer for HTTP clients and servers: a breaker per authority ([`Authority`]),
/// `5xx` and `429` are failures ([`HttpClassifier`](crate::http::HttpClassifier)), and a
/// rejection is a `503` ([`ServiceUnavailable`](crate::http::ServiceUnavailable)); what
/// [`ServiceBuilderExt::http_keyed_circuit_breaker`](crate::ServiceBuilderExt::http_keyed_circuit_breaker)
/// adds.
///
/// ```
/// use std::sync::Arc;
/// use tower_cutout::http::{HttpClassifier, ServiceUnavailable};
/// use tower_cutout::keyed::{Authority, HttpKeyedCircuitBreakerLayer, KeyedCircuitBreakerLayer};
///
/// let hosts = Arc::new(cutout_keyed::KeyedBreakers::builder(cutout::CircuitBreaker::builder()).build()?);
/// let layer: HttpKeyedCircuitBreakerLayer = KeyedCircuitBreakerLayer::new(hosts, Authority::new())
///     .classify(HttpClassifier::new())
///     .reject_with(ServiceUnavailable);
/// # let _ = layer;
/// # Ok::<(), cutout_keyed::KeyedConfigError>(())
/// ```
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub type HttpKeyedCircuitBreakerLayer<
    H = cutout_keyed::DefaultHashBuilder,
    G = std::sync::Arc<cutout_keyed::KeyedBreakers<AuthorityKey, H>>,
> = KeyedCircuitBreakerLayer<
    AuthorityKey,
    Authority,
    crate::http::HttpClassifier,
    crate::http::ServiceUnavailable,
    H,
    G,
>;
