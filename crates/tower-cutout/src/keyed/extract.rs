//! Where a request's key comes from: [`KeyExtractor`], and [`Authority`] for HTTP.

/// Picks the key whose breaker guards a request.
///
/// Implemented for closures `Fn(&Request) -> Option<Key>`. `None` means the request has no
/// key: it passes through to the inner service unprotected (no breaker is asked, nothing is
/// recorded). To protect such requests too, return a fallback key instead of `None`.
///
/// ```
/// use tower_cutout::keyed::KeyExtractor;
///
/// struct Job { tenant: u64 }
///
/// let by_tenant = |job: &Job| Some(job.tenant);
/// assert_eq!(by_tenant.extract(&Job { tenant: 7 }), Some(7));
/// ```
pub trait KeyExtractor<Req> {
    /// The key type.
    type Key;

    /// The key of `request`, or `None` to let it through unprotected.
    fn extract(&self, request: &Req) -> Option<Self::Key>;
}

impl<F, Req, K> KeyExtractor<Req> for F
where
    F: Fn(&Req) -> Option<K>,
{
    type Key = K;

    #[inline]
    fn extract(&self, request: &Req) -> Option<K> {
        self(request)
    }
}

#[cfg(feature = "http")]
pub use self::authority::Authority;

#[cfg(feature = "http")]
mod authority {
    use http::Request;
    use http::header::HOST;
    use http::uri::{self, Scheme};

    use super::KeyExtractor;

    /// Keys HTTP requests by the authority they are sent to (`host:port`), as an
    /// [`http::uri::Authority`], which compares and hashes case-insensitively: `A.Example`
    /// and `a.example` share one breaker.
    ///
    /// - The authority comes from the request's URI (a client's absolute URI, an HTTP/2
    ///   request's `:authority`), else from its `Host` header (an HTTP/1.1 request as a server
    ///   sees it).
    /// - User info is dropped (`user:secret@a.example` is `a.example`: credentials never
    ///   become keys or breaker names), and so is a port that is the URI scheme's default
    ///   (`http://a.example:80` is `a.example`). A `Host` header carries no scheme, so its
    ///   port is kept as written.
    /// - A request with neither, or with a `Host` header that is not a valid authority, has
    ///   no key: it passes through unprotected, unless a [`fallback`](Self::fallback) key is
    ///   set, whose breaker then guards every such request.
    ///
    /// Keys taken from a server's requests are chosen by clients: keep the registry's default
    /// (DoS-resistant) hasher, and its capacity bounds the memory whatever they send.
    ///
    /// ```
    /// use http::{Request, uri};
    /// use tower_cutout::keyed::{Authority, KeyExtractor};
    ///
    /// let key = |r: &Request<()>| Authority::new().extract(r);
    /// let get = |u: &str| Request::get(u).body(()).unwrap();
    /// assert_eq!(key(&get("https://API.example:443/v1")).unwrap(), "api.example");
    /// assert_eq!(key(&get("http://me:pw@api.example:8080/")).unwrap().as_str(), "api.example:8080");
    /// let from_host = Request::get("/v1").header("host", "api.example").body(()).unwrap();
    /// assert_eq!(key(&from_host).unwrap(), "api.example");
    /// assert_eq!(key(&get("/v1")), None);
    ///
    /// let or_default = Authority::new().fallback(uri::Authority::from_static("unknown.invalid"));
    /// assert_eq!(or_default.extract(&get("/v1")).unwrap(), "unknown.invalid");
    /// ```
    #[derive(Debug, Clone, Default)]
    pub struct Authority {
        fallback: Option<uri::Authority>,
    }

    impl Authority {
        /// The URI's authority, else the `Host` header's; requests with neither pass
        /// through unprotected.
        pub const fn new() -> Self {
            Self { fallback: None }
        }

        /// Guards requests with no authority with the breaker of `key` instead of letting
        /// them through unprotected.
        pub fn fallback(mut self, key: uri::Authority) -> Self {
            self.fallback = Some(key);
            self
        }
    }

    impl<B> KeyExtractor<Request<B>> for Authority {
        type Key = uri::Authority;

        #[inline]
        fn extract(&self, request: &Request<B>) -> Option<uri::Authority> {
            let uri = request.uri();
            if let Some(authority) = uri.authority() {
                return Some(canonical(authority, uri.scheme()));
            }
            from_host_header(request).or_else(|| self.fallback.clone())
        }
    }

    #[cold]
    #[inline(never)]
    fn from_host_header<B>(request: &Request<B>) -> Option<uri::Authority> {
        let value = request.headers().get(HOST)?;
        let authority = uri::Authority::try_from(value.as_bytes()).ok()?;
        Some(canonical(&authority, None))
    }

    /// `host[:port]`: no user info, no port that is `scheme`'s default. A clone (a
    /// reference count, no copy) when `authority` is already so.
    #[inline]
    fn canonical(authority: &uri::Authority, scheme: Option<&Scheme>) -> uri::Authority {
        let default_port = match scheme {
            Some(s) if *s == Scheme::HTTP => Some(80),
            Some(s) if *s == Scheme::HTTPS => Some(443),
            _ => None,
        };
        let port = authority
            .port()
            .filter(|p| default_port != Some(p.as_u16()));
        let host = authority.host();
        let len = host.len() + port.as_ref().map_or(0, |p| 1 + p.as_str().len());
        if authority.as_str().len() == len {
            // Nothing but `host[:port]` (user info or a dropped port would add bytes).
            return authority.clone();
        }
        rebuild(authority, host, port.as_ref().map(|p| p.as_str()))
    }

    #[cold]
    #[inline(never)]
    fn rebuild(authority: &uri::Authority, host: &str, port: Option<&str>) -> uri::Authority {
        let text = match port {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        // A host and port cut from a valid authority form a valid one; keep the original
        // rather than panic if that ever failed.
        uri::Authority::try_from(text).unwrap_or_else(|_| authority.clone())
    }
}
