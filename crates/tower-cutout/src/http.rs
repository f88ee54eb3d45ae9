//! HTTP: failures by status, an upstream's `Retry-After`, and rejections as
//! `503 Service Unavailable`.
//!
//! An axum router needs infallible services; [`ServiceUnavailable`] answers a rejection
//! with a `503` and a `Retry-After` header instead of an error, so no `HandleErrorLayer` is
//! needed:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_cutout::error::BoxError> {
//! use axum::{Router, body::Body, http::{Request, StatusCode}, routing::get};
//! use tower::ServiceExt;
//! use tower_cutout::ServiceBuilderExt;
//!
//! let breaker = cutout::CircuitBreaker::builder().build()?;
//! let app = Router::new()
//!     .route("/quote", get(|| async { "42" }))
//!     .layer(tower::ServiceBuilder::new().http_circuit_breaker(breaker.clone()));
//!
//! breaker.force_open();
//! let response = app.oneshot(Request::get("/quote").body(Body::empty())?).await?;
//! assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::time::{Duration, SystemTime};

use cutout::Outcome;
use http::header::RETRY_AFTER;
use http::{HeaderValue, Response, StatusCode};

use crate::classify::{Classify, Recorder};
use crate::reject::Reject;

/// The statuses [`HttpClassifier`] can count as failures: the client and server error
/// classes, `400..=599`.
const FIRST: u16 = 400;
const LAST: u16 = 599;

/// Classifies HTTP responses by status: by default `5xx` and `429 Too Many Requests` are
/// failures, every other status is a success, and an `Err` (no response at all) is a
/// failure.
///
/// With [`honor_retry_after`](Self::honor_retry_after), a failing `429` or `503` that
/// carries a `Retry-After` (seconds or an HTTP date) keeps the circuit open at least that
/// long if it trips it (up to a maximum). A malformed `Retry-After` is ignored.
///
/// ```
/// use http::StatusCode;
/// use tower_cutout::http::HttpClassifier;
///
/// let classifier = HttpClassifier::new()
///     .not_failure(StatusCode::NOT_IMPLEMENTED)
///     .failure(StatusCode::REQUEST_TIMEOUT);
/// assert!(classifier.is_failure(StatusCode::BAD_GATEWAY));
/// assert!(classifier.is_failure(StatusCode::TOO_MANY_REQUESTS));
/// assert!(classifier.is_failure(StatusCode::REQUEST_TIMEOUT));
/// assert!(!classifier.is_failure(StatusCode::NOT_IMPLEMENTED));
/// assert!(!classifier.is_failure(StatusCode::NOT_FOUND));
/// assert!(!classifier.is_failure(StatusCode::OK));
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HttpClassifier {
    /// Bit `s - 400` is set when status `s` is a failure.
    failures: [u64; 4],
    /// The longest `Retry-After` honoured; `None`: ignore the header.
    max_retry_after: Option<Duration>,
}

impl HttpClassifier {
    /// `5xx` and `429` are failures; `Retry-After` is not honoured.
    pub const fn new() -> Self {
        let mut c = Self::none();
        let mut s = 500;
        while s <= 599 {
            c.failures = set(c.failures, s, true);
            s += 1;
        }
        c.failures = set(c.failures, 429, true);
        c
    }

    /// No status is a failure (only errors are); add some with [`failure`](Self::failure).
    pub const fn none() -> Self {
        Self {
            failures: [0; 4],
            max_retry_after: None,
        }
    }

    /// Counts `status` as a failure. Only `400..=599` can be failures: other statuses are
    /// left successes.
    pub const fn failure(mut self, status: StatusCode) -> Self {
        self.failures = set(self.failures, status.as_u16(), true);
        self
    }

    /// Counts `status` as a success.
    pub const fn not_failure(mut self, status: StatusCode) -> Self {
        self.failures = set(self.failures, status.as_u16(), false);
        self
    }

    /// Honours an upstream's `Retry-After` on a failing `429` or `503`, up to `max`: if the
    /// response trips the circuit, it stays open at least that long.
    pub const fn honor_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = Some(max);
        self
    }

    /// Whether `status` counts as a failure.
    pub const fn is_failure(&self, status: StatusCode) -> bool {
        contains(self.failures, status.as_u16())
    }

    /// The outcome for a response with `status`.
    pub const fn outcome(&self, status: StatusCode) -> Outcome {
        if self.is_failure(status) {
            Outcome::Failure
        } else {
            Outcome::Success
        }
    }

    /// The honoured `Retry-After` of a failing response, if any.
    fn retry_after<B>(&self, response: &Response<B>) -> Option<Duration> {
        let max = self.max_retry_after?;
        if !matches!(
            response.status(),
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            return None;
        }
        let value = response.headers().get(RETRY_AFTER)?;
        parse_retry_after(value, SystemTime::now()).map(|d| d.min(max))
    }
}

const fn contains(failures: [u64; 4], status: u16) -> bool {
    if status < FIRST || status > LAST {
        return false;
    }
    let i = (status - FIRST) as usize;
    failures[i / 64] & (1 << (i % 64)) != 0
}

const fn set(mut failures: [u64; 4], status: u16, on: bool) -> [u64; 4] {
    if status < FIRST || status > LAST {
        return failures;
    }
    let i = (status - FIRST) as usize;
    if on {
        failures[i / 64] |= 1 << (i % 64);
    } else {
        failures[i / 64] &= !(1 << (i % 64));
    }
    failures
}

impl Default for HttpClassifier {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HttpClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failures: Vec<u16> = (FIRST..=LAST)
            .filter(|s| contains(self.failures, *s))
            .collect();
        f.debug_struct("HttpClassifier")
            .field("failures", &failures)
            .field("max_retry_after", &self.max_retry_after)
            .finish()
    }
}

impl<B, E> Classify<Response<B>, E> for HttpClassifier {
    type Response = Response<B>;

    fn classify(
        &self,
        result: Result<Response<B>, E>,
        recorder: Recorder,
    ) -> Result<Response<B>, E> {
        match &result {
            Err(_) => recorder.record(Outcome::Failure),
            Ok(response) => {
                let outcome = self.outcome(response.status());
                match self.retry_after(response) {
                    Some(d) if outcome == Outcome::Failure => {
                        recorder.record_with_retry_after(outcome, d)
                    }
                    _ => recorder.record(outcome),
                }
            }
        }
        result
    }
}

/// Parses a `Retry-After` value: delay seconds (`120`) or an HTTP date (`Wed, 21 Oct 2015
/// 07:28:00 GMT`, and the obsolete RFC 850 and asctime forms), as the time left after
/// `now`. A date in the past is zero; anything malformed is `None`.
///
/// ```
/// use http::HeaderValue;
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use tower_cutout::http::parse_retry_after;
///
/// let now = UNIX_EPOCH + Duration::from_secs(1_445_412_400); // Wed, 21 Oct 2015 07:26:40 GMT
/// let at = |v: &'static str| parse_retry_after(&HeaderValue::from_static(v), now);
/// assert_eq!(at("120"), Some(Duration::from_secs(120)));
/// assert_eq!(at("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::from_secs(80)));
/// assert_eq!(at("Wed, 21 Oct 2015 07:00:00 GMT"), Some(Duration::ZERO));
/// assert_eq!(at("soon"), None);
/// assert_eq!(at("-5"), None);
/// ```
pub fn parse_retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Rejections become `503 Service Unavailable` responses with a `Retry-After` header
/// (whole seconds, rounded up; none when the circuit is forced open) and an empty body;
/// the inner service's errors pass through unchanged (an infallible service stays
/// infallible). The response carries the [`cutout::Rejected`] in its extensions.
///
/// `Retry-After` is a static value up to an hour (one allocation above), so a rejection
/// allocates only what the response needs: the header map's storage (2) and the
/// extension (3); see [`crate::reject`].
///
/// ```
/// use http::{Response, StatusCode, header::RETRY_AFTER};
/// use std::time::Duration;
/// use tower_cutout::{http::ServiceUnavailable, reject::Reject};
///
/// let rejection = cutout::Rejected::Open { retry_after: Duration::from_millis(4_200) };
/// let response: Response<String> =
///     Reject::<_, std::convert::Infallible>::rejected(&ServiceUnavailable, rejection).unwrap();
/// assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
/// assert_eq!(response.headers()[RETRY_AFTER], "5");
/// assert_eq!(response.extensions().get::<cutout::Rejected>(), Some(&rejection));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceUnavailable;

impl<B: Default, E> Reject<Response<B>, E> for ServiceUnavailable {
    type Error = E;

    fn rejected(&self, rejection: cutout::Rejected) -> Result<Response<B>, E> {
        Ok(service_unavailable(rejection))
    }

    #[inline]
    fn inner_error(&self, error: E) -> E {
        error
    }
}

/// The `503 Service Unavailable` response for `rejection` (see [`ServiceUnavailable`]).
pub fn service_unavailable<B: Default>(rejection: cutout::Rejected) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    if let Some(d) = rejection.retry_after() {
        response
            .headers_mut()
            .insert(RETRY_AFTER, crate::decimal::header_value(whole_seconds(d)));
    }
    response.extensions_mut().insert(rejection);
    response
}

/// Whole seconds, rounded up.
pub(crate) fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}
