//! The atomics the breaker uses, from one place.
//!
//! Production code imports its atomics only from here. Under `--cfg cutout_loom` they are
//! loom's, so the loom models in `loom-tests/` check the real state machine; otherwise they
//! are std's. A namespaced cfg is used (not `--cfg loom`) so that tokio and other
//! dependencies are not switched to their own loom builds.

#[cfg(cutout_loom)]
pub(crate) use loom::sync::atomic::AtomicU64;
#[cfg(not(cutout_loom))]
pub(crate) use std::sync::atomic::AtomicU64;

pub(crate) use std::sync::atomic::Ordering;
