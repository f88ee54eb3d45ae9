//! HTTP: retry idempotent requests on retryable statuses, honouring `Retry-After`.

use std::convert::Infallible;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, Request, Response, StatusCode, header};

use super::classify::{Classify, Verdict, classify_error};
use super::repeat::Repeat;
use crate::error::BoxError;

/// The header that makes a non-idempotent request safe to repeat
/// (`Idempotency-Key`, as payment APIs and the IETF draft use it).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Repeats HTTP requests whose method is idempotent (`GET`, `HEAD`, `OPTIONS`, `TRACE`,
/// `PUT`, `DELETE`), or that carry an `Idempotency-Key` header, when their body can be
/// cloned. `POST`, `PATCH` and `CONNECT` without the header are never repeated.
///
/// ```
/// use cutout_companions::retry::{IdempotentRequests, Repeat};
/// use http::{Method, Request};
///
/// let get = Request::get("/orders/7").body(()).unwrap();
/// let post = Request::post("/orders").body(()).unwrap();
/// let keyed = Request::post("/orders").header("idempotency-key", "k-1").body(()).unwrap();
/// assert!(IdempotentRequests.repeat(&get).is_some());
/// assert!(IdempotentRequests.repeat(&post).is_none());
/// assert_eq!(IdempotentRequests.repeat(&keyed).unwrap().method(), Method::POST);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdempotentRequests;

impl<B: Clone> Repeat<Request<B>> for IdempotentRequests {
    fn repeat(&self, req: &Request<B>) -> Option<Request<B>> {
        (req.method().is_idempotent() || req.headers().contains_key(IDEMPOTENCY_KEY))
            .then(|| req.clone())
    }
}

/// Classifies HTTP responses: a response whose status is in the set (by default 429, 502,
/// 503 and 504) is transient and waits at least its `Retry-After`; any other response is
/// done. Errors are judged by [`classify_error`]. A `503` made by a circuit breaker in this
/// process, marked by a [`cutout::Rejected`] in its extensions, is [`Verdict::Rejected`].
///
/// Implemented for services whose error is a [`BoxError`] or [`Infallible`] (axum).
///
/// ```
/// use cutout_companions::{BoxError, retry::{Classify, RetryableStatus, Verdict}};
/// use http::{Response, StatusCode};
/// use std::time::Duration;
///
/// let busy: Result<_, BoxError> = Ok(Response::builder().status(503).header("retry-after", "2").body(()).unwrap());
/// assert_eq!(RetryableStatus::default().classify(&busy), Verdict::Transient { retry_after: Some(Duration::from_secs(2)) });
/// let missing: Result<_, BoxError> = Ok(Response::builder().status(404).body(()).unwrap());
/// assert_eq!(RetryableStatus::default().classify(&missing), Verdict::Done);
/// let also_404 = RetryableStatus::default().with(StatusCode::NOT_FOUND);
/// assert_eq!(also_404.classify(&missing), Verdict::Transient { retry_after: None });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryableStatus {
    /// One bit per status 100..=611 (status - 100).
    bits: [u64; 8],
}

impl RetryableStatus {
    /// No status is retryable (errors still are).
    pub const fn none() -> Self {
        Self { bits: [0; 8] }
    }

    /// Adds `status` to the set.
    pub const fn with(mut self, status: StatusCode) -> Self {
        let i = (status.as_u16() - 100) as usize;
        if i < 512 {
            self.bits[i / 64] |= 1 << (i % 64);
        }
        self
    }

    /// Removes `status` from the set.
    pub const fn without(mut self, status: StatusCode) -> Self {
        let i = (status.as_u16() - 100) as usize;
        if i < 512 {
            self.bits[i / 64] &= !(1 << (i % 64));
        }
        self
    }

    /// Whether `status` is in the set.
    pub const fn contains(&self, status: StatusCode) -> bool {
        let i = (status.as_u16() - 100) as usize;
        i < 512 && self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    fn response<B>(&self, res: &Response<B>) -> Verdict {
        if res.extensions().get::<cutout::Rejected>().is_some() {
            return Verdict::Rejected;
        }
        if self.contains(res.status()) {
            Verdict::Transient {
                retry_after: retry_after_header(res.headers(), SystemTime::now()),
            }
        } else {
            Verdict::Done
        }
    }
}

impl Default for RetryableStatus {
    /// 429 Too Many Requests, 502 Bad Gateway, 503 Service Unavailable, 504 Gateway Timeout.
    fn default() -> Self {
        Self::none()
            .with(StatusCode::TOO_MANY_REQUESTS)
            .with(StatusCode::BAD_GATEWAY)
            .with(StatusCode::SERVICE_UNAVAILABLE)
            .with(StatusCode::GATEWAY_TIMEOUT)
    }
}

impl<B> Classify<Response<B>, BoxError> for RetryableStatus {
    fn classify(&self, result: &Result<Response<B>, BoxError>) -> Verdict {
        match result {
            Ok(res) => self.response(res),
            Err(e) => classify_error(e.as_ref()),
        }
    }
}

impl<B> Classify<Response<B>, Infallible> for RetryableStatus {
    fn classify(&self, result: &Result<Response<B>, Infallible>) -> Verdict {
        match result {
            Ok(res) => self.response(res),
            Err(never) => match *never {},
        }
    }
}

/// The wait a `Retry-After` header asks for, at `now`: delay-seconds, or an HTTP date
/// (a date in the past is no wait). `None` when the header is missing or unreadable.
///
/// ```
/// use cutout_companions::retry::retry_after_header;
/// use http::HeaderMap;
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("retry-after", "120".parse().unwrap());
/// assert_eq!(retry_after_header(&headers, SystemTime::now()), Some(Duration::from_secs(120)));
///
/// headers.insert("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
/// let now = UNIX_EPOCH + Duration::from_secs(1_445_412_470); // ten seconds before
/// assert_eq!(retry_after_header(&headers, now), Some(Duration::from_secs(10)));
/// ```
pub fn retry_after_header(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is "a very long time", not "no wait".
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_set_edges() {
        let set = RetryableStatus::none()
            .with(StatusCode::CONTINUE)
            .with(StatusCode::from_u16(599).unwrap());
        assert!(set.contains(StatusCode::CONTINUE));
        assert!(set.contains(StatusCode::from_u16(599).unwrap()));
        assert!(!set.contains(StatusCode::OK));
        // Statuses past 611 cannot be stored and are never contained.
        let high = StatusCode::from_u16(999).unwrap();
        assert!(!set.with(high).contains(high));
        assert!(
            !set.without(StatusCode::CONTINUE)
                .contains(StatusCode::CONTINUE)
        );
        let default = RetryableStatus::default();
        for code in [429, 502, 503, 504] {
            assert!(
                default.contains(StatusCode::from_u16(code).unwrap()),
                "{code}"
            );
        }
        for code in [200, 400, 404, 500, 501] {
            assert!(
                !default.contains(StatusCode::from_u16(code).unwrap()),
                "{code}"
            );
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after_header(&h, now), None);
        for (value, expected) in [
            ("0", Some(Duration::ZERO)),
            (" 7 ", Some(Duration::from_secs(7))),
            (
                "99999999999999999999999",
                Some(Duration::from_secs(u64::MAX)),
            ),
            ("-1", None),
            ("soon", None),
            ("", None),
            ("Wed, 21 Oct 2015 07:28:00 GMT", Some(Duration::ZERO)),
            (
                "Wed, 21 Oct 2015 07:29:00 GMT",
                Some(Duration::from_secs(60)),
            ),
            ("Wed, 21 Oct 2015 07:27:00 GMT", Some(Duration::ZERO)),
        ] {
            h.insert(header::RETRY_AFTER, value.parse().unwrap());
            assert_eq!(retry_after_header(&h, now), expected, "{value:?}");
        }
    }
}
