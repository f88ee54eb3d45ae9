//! An inner service that counts its `poll_ready` and `call` invocations, for the tests that
//! check what the layer passes through. Include with
//! `#[path = "support/counted.rs"] mod counted;`.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tower::Service;

/// Counts the inner service's `poll_ready` and `call` invocations.
#[derive(Clone)]
pub(crate) struct Counted<S> {
    inner: S,
    pub(crate) polls: Arc<AtomicUsize>,
    pub(crate) calls: Arc<AtomicUsize>,
}

impl<S> Counted<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            polls: Arc::default(),
            calls: Arc::default(),
        }
    }

    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl<S: Service<R>, R> Service<R> for Counted<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> S::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.call(req)
    }
}
