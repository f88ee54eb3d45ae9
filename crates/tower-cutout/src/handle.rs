//! How a service holds its breaker: [`BreakerHandle`].
//!
//! | handle | a service clone | a call's permit | shared writes per request |
//! |---|---|---|---|
//! | `&'static cutout::CircuitBreaker` (fast) | copies a pointer | [`cutout::Permit<'static>`] | none on the closed path |
//! | [`cutout::CircuitBreaker`] | a reference-count increment | [`cutout::OwnedPermit`] | the reference count, twice |
//!
//! The response future must be `'static`, so with an owned handle it holds an
//! [`OwnedPermit`](cutout::OwnedPermit), which owns a reference count on the breaker: every
//! request increments and decrements that count, one cache line every thread writes (and
//! axum clones the service per request, which is one more). A breaker that lives for the
//! whole process ([`cutout::CircuitBreaker::leak`], or a `static` in a
//! `std::sync::LazyLock`) is borrowed instead: the future holds a `Permit<'static>`, a
//! clone of the service copies a pointer, and the closed path writes only the calling
//! thread's own counter slot.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_cutout::error::BoxError> {
//! use std::sync::LazyLock;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_cutout::CircuitBreakerLayer;
//!
//! // Made once, at start-up: either way gives a `&'static cutout::CircuitBreaker`.
//! let leaked = cutout::CircuitBreaker::builder().name("payments").build()?.leak();
//! static INVENTORY: LazyLock<cutout::CircuitBreaker> = LazyLock::new(|| {
//!     cutout::CircuitBreaker::builder().name("inventory").build().expect("valid settings")
//! });
//!
//! for breaker in [leaked, &*INVENTORY] {
//!     let mut svc = ServiceBuilder::new()
//!         .layer(CircuitBreakerLayer::new(breaker))
//!         .service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n + 1) });
//!     assert_eq!(svc.ready().await?.call(1).await?, 2);
//!     assert_eq!(breaker.stats().successes, 1);
//! }
//! # Ok(())
//! # }
//! ```

use std::fmt;

use crate::recording::IntoRecorder;

pub(crate) mod sealed {
    use super::*;

    /// What the service needs of a handle; sealed, so the permit type stays internal.
    pub trait Handle: Clone {
        /// The permit a response future holds until its call finishes.
        type Permit: IntoRecorder + fmt::Debug;

        /// The breaker.
        fn get(&self) -> &cutout::CircuitBreaker;

        /// Asks the breaker for a permit.
        fn acquire(&self) -> Result<Self::Permit, cutout::CompactRejected>;
    }
}

/// A handle through which a [`CircuitBreaker`](crate::CircuitBreaker) service reaches its
/// breaker: a [`cutout::CircuitBreaker`] (owned, reference-counted) or a
/// `&'static cutout::CircuitBreaker` (borrowed, no reference count; see the
/// [module docs](self)). Sealed: these two are the implementations.
pub trait BreakerHandle: sealed::Handle {
    /// The breaker this handle reaches.
    fn breaker(&self) -> &cutout::CircuitBreaker {
        self.get()
    }
}

impl sealed::Handle for cutout::CircuitBreaker {
    type Permit = cutout::OwnedPermit;

    #[inline]
    fn get(&self) -> &cutout::CircuitBreaker {
        self
    }

    #[inline]
    fn acquire(&self) -> Result<cutout::OwnedPermit, cutout::CompactRejected> {
        self.try_acquire_owned_compact()
    }
}

impl BreakerHandle for cutout::CircuitBreaker {}

impl sealed::Handle for &'static cutout::CircuitBreaker {
    type Permit = cutout::Permit<'static>;

    #[inline]
    fn get(&self) -> &cutout::CircuitBreaker {
        self
    }

    #[inline]
    fn acquire(&self) -> Result<cutout::Permit<'static>, cutout::CompactRejected> {
        // `*self` is the `&'static` reference: the permit borrows the breaker for `'static`.
        let &breaker = self;
        breaker.try_acquire_compact()
    }
}

impl BreakerHandle for &'static cutout::CircuitBreaker {}
