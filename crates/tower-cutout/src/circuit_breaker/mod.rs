//! The circuit breaker middleware, laid out as tower's own: config in `layer`, the service
//! in `service`, its future in `future`, its errors in `error`.

pub mod error;
pub mod future;
mod layer;
mod service;

pub use layer::{CircuitBreakerLayer, DEFAULT_RECHECK_INTERVAL};
pub use service::CircuitBreaker;
