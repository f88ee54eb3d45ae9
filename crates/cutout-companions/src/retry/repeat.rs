//! Which requests may be sent again, and how to copy them.

/// Decides whether a request may be sent again and makes the copy to send.
///
/// Returning `None` means the request is never retried (it cannot be copied, or repeating
/// it is not safe). Implemented for closures `Fn(&Req) -> Option<Req>`.
///
/// ```
/// use cutout_companions::retry::Repeat;
///
/// // Only reads may be repeated.
/// #[derive(Clone, Debug, PartialEq)]
/// enum Op { Read(u32), Write(u32) }
/// let reads_only = |op: &Op| match op {
///     Op::Read(_) => Some(op.clone()),
///     Op::Write(_) => None,
/// };
/// assert_eq!(reads_only.repeat(&Op::Read(1)), Some(Op::Read(1)));
/// assert_eq!(reads_only.repeat(&Op::Write(1)), None);
/// ```
pub trait Repeat<Req> {
    /// A copy of `req` to send again, or `None` to never retry it.
    fn repeat(&self, req: &Req) -> Option<Req>;
}

impl<F, Req> Repeat<Req> for F
where
    F: Fn(&Req) -> Option<Req>,
{
    #[inline]
    fn repeat(&self, req: &Req) -> Option<Req> {
        self(req)
    }
}

/// The default for non-HTTP requests: every request that can be cloned may be repeated.
/// Use [`RepeatIf`] (or [`RetryPolicy::repeat_if`](super::RetryPolicy::repeat_if)) when some
/// requests are not safe to repeat.
///
/// ```
/// use cutout_companions::retry::{Cloned, Repeat};
///
/// assert_eq!(Cloned.repeat(&"GET /"), Some("GET /"));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cloned;

impl<Req: Clone> Repeat<Req> for Cloned {
    #[inline]
    fn repeat(&self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

/// Repeats a cloneable request when a predicate says it is safe.
///
/// ```
/// use cutout_companions::retry::{Repeat, RepeatIf};
///
/// let idempotent = RepeatIf(|op: &&str| op.starts_with("GET"));
/// assert_eq!(idempotent.repeat(&"GET /a"), Some("GET /a"));
/// assert_eq!(idempotent.repeat(&"POST /a"), None);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RepeatIf<P>(pub P);

impl<P, Req> Repeat<Req> for RepeatIf<P>
where
    P: Fn(&Req) -> bool,
    Req: Clone,
{
    #[inline]
    fn repeat(&self, req: &Req) -> Option<Req> {
        (self.0)(req).then(|| req.clone())
    }
}

/// Never repeats a request: the policy then only counts requests into the budget.
///
/// ```
/// use cutout_companions::retry::{Never, Repeat};
///
/// assert_eq!(Never.repeat(&1), None::<i32>);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Never;

impl<Req> Repeat<Req> for Never {
    #[inline]
    fn repeat(&self, _req: &Req) -> Option<Req> {
        None
    }
}
