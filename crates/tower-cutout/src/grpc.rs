//! gRPC: failures by `grpc-status` (in the response headers or its trailers), and
//! rejections as `tonic::Status::unavailable`.
//!
//! - [`GrpcClassifier`] reads the status of each call: from the headers of a
//!   trailers-only response (how servers send errors at once), else from the trailers at
//!   the end of the body, which it watches through [`GrpcBody`]. A body dropped before its
//!   trailers (a cancelled call) records nothing ([`Outcome::Ignored`]).
//! - On a server, [`UnavailableResponse`] answers a rejection with a trailers-only
//!   `UNAVAILABLE` response (`grpc-status: 14`) and a `grpc-retry-pushback-ms` hint.
//! - On a client, [`UnavailableError`] fails the call with an error tonic's client reports
//!   as `Status::unavailable`, with the retry time in its message and a
//!   `grpc-retry-pushback-ms` entry; the status's source is the [`error::Rejected`](Rejected)
//!   (of unknown reason once tonic has moved it: the status gives the kind and the time).
//!
//! Neither allocates per rejection beyond the response's header map (see
//! [`crate::reject`]): header values are static, and the client's statuses are made once
//! per kind and whole second of retry time.
//!
//! ```
//! use tonic::Code;
//! use tower_cutout::grpc::GrpcClassifier;
//!
//! let classifier = GrpcClassifier::new().failure(Code::Aborted).not_failure(Code::Unknown);
//! assert!(classifier.is_failure(Code::Unavailable));
//! assert!(classifier.is_failure(Code::Aborted));
//! assert!(!classifier.is_failure(Code::Unknown));
//! assert!(!classifier.is_failure(Code::NotFound));
//! ```

use std::fmt;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use cutout::Outcome;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tonic::{Code, Status};

use crate::classify::{Classify, Recorder};
use crate::error::{BoxError, Rejected};
use crate::reject::Reject;

const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// gRPC's retry pushback: how long the client should wait before retrying, in ms.
const PUSHBACK: HeaderName = HeaderName::from_static("grpc-retry-pushback-ms");

/// Classifies gRPC calls by status code: `UNAVAILABLE`, `DEADLINE_EXCEEDED`,
/// `RESOURCE_EXHAUSTED`, `INTERNAL` and `UNKNOWN` are failures by default, every other code
/// is a success, and an `Err` (no response) is a failure.
///
/// The code comes from the `grpc-status` header of a trailers-only response, else from the
/// trailers, else (a non-`200` HTTP status from a proxy) from the HTTP status as gRPC maps
/// it (`429`, `502`, `503`, `504`: `UNAVAILABLE`); a body that ends without a status or
/// fails counts as `UNKNOWN`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct GrpcClassifier {
    /// Bit `c` is set when code `c` is a failure.
    failures: u32,
}

impl GrpcClassifier {
    /// The default failures: `UNAVAILABLE`, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`,
    /// `INTERNAL`, `UNKNOWN`.
    pub const fn new() -> Self {
        Self::none()
            .failure(Code::Unavailable)
            .failure(Code::DeadlineExceeded)
            .failure(Code::ResourceExhausted)
            .failure(Code::Internal)
            .failure(Code::Unknown)
    }

    /// No code is a failure (only errors are); add some with [`failure`](Self::failure).
    pub const fn none() -> Self {
        Self { failures: 0 }
    }

    /// Counts `code` as a failure.
    pub const fn failure(mut self, code: Code) -> Self {
        self.failures |= 1 << code as u32;
        self
    }

    /// Counts `code` as a success.
    pub const fn not_failure(mut self, code: Code) -> Self {
        self.failures &= !(1 << code as u32);
        self
    }

    /// Whether `code` counts as a failure.
    pub const fn is_failure(&self, code: Code) -> bool {
        self.failures & (1 << code as u32) != 0
    }

    /// The outcome for a call that ended with `code`.
    pub const fn outcome(&self, code: Code) -> Outcome {
        if self.is_failure(code) {
            Outcome::Failure
        } else {
            Outcome::Success
        }
    }
}

impl Default for GrpcClassifier {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for GrpcClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failures: Vec<Code> = (0..=16)
            .map(Code::from_i32)
            .filter(|c| self.is_failure(*c))
            .collect();
        f.debug_struct("GrpcClassifier")
            .field("failures", &failures)
            .finish()
    }
}

/// The `grpc-status` in `headers`, if there is one (`UNKNOWN` if it does not parse).
fn status_in(headers: &HeaderMap) -> Option<Code> {
    headers
        .get(GRPC_STATUS)
        .map(|v| Code::from_bytes(v.as_bytes()))
}

/// The code gRPC gives a response with a non-`200` HTTP status and no `grpc-status`.
fn code_for_http_status(status: StatusCode) -> Code {
    match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502..=504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

impl<B, E> Classify<Response<B>, E> for GrpcClassifier {
    type Response = Response<GrpcBody<B>>;

    fn classify(
        &self,
        result: Result<Response<B>, E>,
        recorder: Recorder,
    ) -> Result<Response<GrpcBody<B>>, E> {
        let response = match result {
            Ok(response) => response,
            Err(e) => {
                recorder.record(Outcome::Failure);
                return Err(e);
            }
        };
        let code = status_in(response.headers()).or_else(|| {
            (response.status() != StatusCode::OK).then(|| code_for_http_status(response.status()))
        });
        Ok(match code {
            Some(code) => {
                recorder.record(self.outcome(code));
                response.map(|body| GrpcBody::new(body, None, *self))
            }
            None => response.map(|body| GrpcBody::new(body, Some(recorder), *self)),
        })
    }
}

pin_project! {
    /// A response body that records its call's outcome when the `grpc-status` trailer
    /// arrives (see [`GrpcClassifier`]). Dropped before then, it records nothing: the
    /// call's permit is given back as [`Outcome::Ignored`].
    pub struct GrpcBody<B> {
        #[pin]
        inner: B,
        recorder: Option<Recorder>,
        classifier: GrpcClassifier,
    }
}

impl<B> GrpcBody<B> {
    fn new(inner: B, recorder: Option<Recorder>, classifier: GrpcClassifier) -> Self {
        Self {
            inner,
            recorder,
            classifier,
        }
    }

    /// The inner body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// The inner body; its outcome, if not yet recorded, is given up (ignored).
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: Default> Default for GrpcBody<B> {
    fn default() -> Self {
        Self::new(B::default(), None, GrpcClassifier::new())
    }
}

impl<B: fmt::Debug> fmt::Debug for GrpcBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcBody")
            .field("inner", &self.inner)
            .field("recorded", &self.recorder.is_none())
            .finish()
    }
}

impl<B: Body> Body for GrpcBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let Some(recorder) = this.recorder.take() {
            match &frame {
                Some(Ok(frame)) => match frame.trailers_ref() {
                    Some(trailers) => recorder.record(
                        this.classifier
                            .outcome(status_in(trailers).unwrap_or(Code::Unknown)),
                    ),
                    // Data: keep watching.
                    None => *this.recorder = Some(recorder),
                },
                // A broken body, or one that ends without a status.
                Some(Err(_)) | None => recorder.record(this.classifier.outcome(Code::Unknown)),
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The `Status::unavailable` for `rejection`: the message is the rejection's, and a
/// `grpc-retry-pushback-ms` entry carries the time until the breaker may admit a call.
/// This builds a new status (it allocates); the layer's own modes use static ones.
///
/// ```
/// use std::time::Duration;
///
/// let status = tower_cutout::grpc::unavailable(cutout::Rejected::Open {
///     retry_after: Duration::from_millis(1500),
/// });
/// assert_eq!(status.code(), tonic::Code::Unavailable);
/// assert_eq!(status.message(), "circuit breaker is open; retry after 1.5s");
/// assert_eq!(status.metadata().get("grpc-retry-pushback-ms").unwrap(), "1500");
/// ```
pub fn unavailable(rejection: cutout::Rejected) -> Status {
    let mut status = Status::unavailable(rejection.to_string());
    if let Some(d) = rejection.retry_after() {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        if let Ok(v) = tonic::metadata::MetadataValue::try_from(ms.to_string()) {
            status.metadata_mut().insert("grpc-retry-pushback-ms", v);
        }
    }
    status
}

/// A rejection's kind, as the static `grpc-message` says it: (the message, percent-encoded
/// as the header carries it). `None`: a rejection of unknown reason.
fn kind_message(reason: Option<&cutout::Rejected>) -> (&'static str, &'static str) {
    match reason {
        Some(cutout::Rejected::Open { .. }) => {
            ("circuit breaker is open", "circuit%20breaker%20is%20open")
        }
        Some(cutout::Rejected::HalfOpenFull { .. }) => (
            "circuit breaker is half-open and its probe slots are taken",
            "circuit%20breaker%20is%20half-open%20and%20its%20probe%20slots%20are%20taken",
        ),
        Some(cutout::Rejected::ForcedOpen) => (
            "circuit breaker is forced open",
            "circuit%20breaker%20is%20forced%20open",
        ),
        _ => (
            "circuit breaker rejected the call",
            "circuit%20breaker%20rejected%20the%20call",
        ),
    }
}

/// The `Status::unavailable` of a rejection, made once per process for each kind and whole
/// second of retry time: the source of an [`UnavailableError`]'s rejection, which tonic's
/// client copies (code, message, `grpc-retry-pushback-ms`) into the status it returns.
///
/// A retry time is rounded up to whole seconds (a client never comes back before the
/// breaker admits), and has its own status up to an hour (`decimal::MAX`); each is made on
/// first use, so a process keeps one per second it has rejected with (a few hundred bytes
/// each; the table of empty cells is zeroed memory the kernel maps only when written).
/// Past an hour, and for a forced-open breaker, the kind's status without a time.
pub(crate) fn static_status(reason: Option<&cutout::Rejected>) -> &'static Status {
    const SECONDS: usize = crate::decimal::MAX as usize + 1;
    static TIMED: [[OnceLock<Status>; SECONDS]; 2] =
        [const { [const { OnceLock::new() }; SECONDS] }; 2];
    let timed = match reason {
        Some(cutout::Rejected::Open { retry_after }) => Some((0, *retry_after)),
        Some(cutout::Rejected::HalfOpenFull { retry_after }) => Some((1, *retry_after)),
        _ => None,
    };
    if let Some((kind, retry_after)) = timed {
        let seconds = crate::http::whole_seconds(retry_after);
        if let Some(cell) = usize::try_from(seconds)
            .ok()
            .and_then(|s| TIMED[kind].get(s))
        {
            return cell.get_or_init(|| {
                let retry_after = Duration::from_secs(seconds);
                unavailable(match kind {
                    0 => cutout::Rejected::Open { retry_after },
                    _ => cutout::Rejected::HalfOpenFull { retry_after },
                })
            });
        }
    }
    static STATUSES: [OnceLock<Status>; 4] = [const { OnceLock::new() }; 4];
    let index = match reason {
        Some(cutout::Rejected::Open { .. }) => 0,
        Some(cutout::Rejected::HalfOpenFull { .. }) => 1,
        Some(cutout::Rejected::ForcedOpen) => 2,
        _ => 3,
    };
    STATUSES[index].get_or_init(|| Status::unavailable(kind_message(reason).0))
}

/// The message of a request whose key got no breaker (the keyed layer's registry is full),
/// and its percent-encoded form.
#[cfg(feature = "keyed")]
pub(crate) const NO_BREAKER_MESSAGE: (&str, &str) = (
    "no breaker for this key: the registry is full",
    "no%20breaker%20for%20this%20key:%20the%20registry%20is%20full",
);

/// The static `Status::unavailable` of a request whose key got no breaker.
#[cfg(feature = "keyed")]
pub(crate) fn no_breaker_status() -> &'static Status {
    static STATUS: OnceLock<Status> = OnceLock::new();
    STATUS.get_or_init(|| Status::unavailable(NO_BREAKER_MESSAGE.0))
}

impl From<Box<Rejected>> for Status {
    /// `Status::unavailable` ([`unavailable`]), with the [`cutout::Rejected`] as its source
    /// (for a rejection read away from its box: the generic message, no source).
    fn from(rejected: Box<Rejected>) -> Self {
        match rejected.reason() {
            Some(reason) => {
                let mut status = unavailable(reason);
                status.set_source(std::sync::Arc::new(reason));
                status
            }
            None => Status::unavailable(kind_message(None).0),
        }
    }
}

/// A trailers-only `UNAVAILABLE` response whose headers are all static: `content-type`,
/// `grpc-status: 14`, `grpc_message` (percent-encoded) and, when `retry_after` is
/// known, `grpc-retry-pushback-ms` (whole seconds, rounded up, in ms: static up to an
/// hour).
pub(crate) fn unavailable_response<B: Default>(
    grpc_message: &'static str,
    retry_after: Option<std::time::Duration>,
) -> Response<B> {
    let mut response = Response::new(B::default());
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(GRPC_STATUS, HeaderValue::from_static("14"));
    headers.insert(GRPC_MESSAGE, HeaderValue::from_static(grpc_message));
    if let Some(d) = retry_after {
        let seconds = crate::http::whole_seconds(d);
        headers.insert(PUSHBACK, crate::decimal::thousands_header_value(seconds));
    }
    response
}

/// For tonic servers: a rejection is a trailers-only response with `grpc-status: 14`
/// (`UNAVAILABLE`), a `grpc-message` for the kind of rejection ("circuit breaker is open")
/// and `grpc-retry-pushback-ms` (the time until the breaker may admit a call, in whole
/// seconds rounded up, in ms), all static values; the [`cutout::Rejected`] is in the
/// response's extensions. The inner service's errors pass through.
///
/// ```
/// use http::Response;
/// use std::time::Duration;
/// use tower_cutout::{grpc::UnavailableResponse, reject::Reject};
///
/// let rejection = cutout::Rejected::Open { retry_after: Duration::from_millis(2_500) };
/// let response: Response<String> =
///     Reject::<_, std::convert::Infallible>::rejected(&UnavailableResponse, rejection).unwrap();
/// assert_eq!(response.status(), http::StatusCode::OK);
/// assert_eq!(response.headers()["grpc-status"], "14");
/// assert_eq!(response.headers()["grpc-message"], "circuit%20breaker%20is%20open");
/// assert_eq!(response.headers()["grpc-retry-pushback-ms"], "3000");
/// assert_eq!(response.headers()["content-type"], "application/grpc");
/// assert_eq!(response.extensions().get::<cutout::Rejected>(), Some(&rejection));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnavailableResponse;

impl<B: Default, E> Reject<Response<B>, E> for UnavailableResponse {
    type Error = E;

    fn rejected(&self, rejection: cutout::Rejected) -> Result<Response<B>, E> {
        let grpc_message = kind_message(Some(&rejection)).1;
        let mut response = unavailable_response(grpc_message, rejection.retry_after());
        response.extensions_mut().insert(rejection);
        Ok(response)
    }

    #[inline]
    fn inner_error(&self, error: E) -> E {
        error
    }
}

/// For tonic clients: a rejection is an [`error::Rejected`](Rejected) whose source is a
/// static `Status::unavailable` for its kind and retry time in whole seconds (rounded up),
/// so tonic's client returns `Status::unavailable` with that message ("circuit breaker is
/// open; retry after 10s") and `grpc-retry-pushback-ms`; the inner service's errors are
/// boxed. Nothing is allocated per rejection (each status is made once per process, on
/// first use; past an hour of retry time the kind's status has no time).
///
/// tonic moves the error into an `Arc` as the returned status's source, so the
/// [`error::Rejected`](Rejected) found there reads as a rejection of unknown reason (no
/// `retry_after`; see its docs): read the time from the status's message or pushback.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnavailableError;

impl<Res, E: Into<BoxError>> Reject<Res, E> for UnavailableError {
    type Error = BoxError;

    #[inline]
    fn rejected(&self, rejection: cutout::Rejected) -> Result<Res, BoxError> {
        Err(Rejected::boxed_with_status(rejection))
    }

    #[inline]
    fn rejected_compact(&self, rejection: cutout::CompactRejected) -> Result<Res, BoxError> {
        Err(Rejected::boxed_compact(rejection, true))
    }

    #[inline]
    fn inner_error(&self, error: E) -> BoxError {
        error.into()
    }
}
