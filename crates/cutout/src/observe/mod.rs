//! Observability: health reports (always), metrics (feature `metrics`) and tracing events
//! (feature `tracing`), all built on the breaker's [`Listener`](crate::Listener) events.
//!
//! Every exporter here is a listener, called synchronously by the thread that caused the
//! event, with no allocation per event. A breaker with none of them pays nothing; the
//! tracing listener and the metrics listener with `CallCounts::OnPublish` keep the
//! closed success path at one load as well. The [crate docs](crate#observability) list
//! every metric and event.
//!
//! Attach them on the builder (`Builder::metrics`, `Builder::tracing`, behind their
//! features); ask any breaker for its
//! [`health`](crate::CircuitBreaker::health).
//!
//! ```
//! use cutout::{CircuitBreaker, HealthStatus};
//!
//! let breaker = CircuitBreaker::builder().name("payments").build()?;
//! let health = breaker.health(); // serializable with the `serde` feature
//! assert_eq!((health.name.as_str(), health.status), ("payments", HealthStatus::Ok));
//! # Ok::<(), cutout::ConfigError>(())
//! ```

mod health;
#[cfg(feature = "metrics")]
mod metrics;
#[cfg(feature = "tracing")]
mod tracing;

pub use health::{Health, HealthCounts, HealthStatus};
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use metrics::{CALLS, CallCounts, MetricsListener, PROBES, STATE, TRANSITIONS, TRIPS};
#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub use tracing::{TARGET, TracingListener};
