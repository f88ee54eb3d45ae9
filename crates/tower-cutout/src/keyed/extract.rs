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
pub use self::authority::{Authority, AuthorityKey};

#[cfg(feature = "http")]
mod authority {
    use std::fmt;
    use std::hash::{Hash, Hasher};
    use std::str::FromStr;

    use http::Request;
    use http::header::HOST;
    use http::uri::{self, InvalidUri, Scheme};

    use super::KeyExtractor;

    /// Keys HTTP requests by the authority they are sent to: an [`AuthorityKey`],
    /// `host[:port]` in lowercase.
    ///
    /// - The authority comes from the request's URI (a client's absolute URI, an HTTP/2
    ///   request's `:authority`), else from its `Host` header (an HTTP/1.1 request as a server
    ///   sees it).
    /// - It is lowercased (`API.Example` and `api.example` share one breaker), user info is
    ///   dropped (`user:secret@a.example` is `a.example`: credentials never become keys or
    ///   breaker names), and so is a port that is the URI scheme's default
    ///   (`http://a.example:80` is `a.example`). A `Host` header carries no scheme, so its
    ///   port is kept.
    /// - A request with neither, or with a `Host` header that is not a valid authority, has
    ///   no key: it passes through unprotected, unless a [`fallback`](Self::fallback) key is
    ///   set, whose breaker then guards every such request.
    ///
    /// Keys taken from a server's requests are chosen by clients: the registry's capacity
    /// bounds the memory whatever they send, and its default hasher is seeded at random; for
    /// SipHash's stronger resistance to chosen collisions, build the registry with
    /// `.hasher(std::hash::RandomState::new())`.
    ///
    /// ```
    /// use http::Request;
    /// use tower_cutout::keyed::{Authority, AuthorityKey, KeyExtractor};
    ///
    /// let key = |r: &Request<()>| Authority::new().extract(r);
    /// let get = |u: &str| Request::get(u).body(()).unwrap();
    /// assert_eq!(key(&get("https://API.example:443/v1")).unwrap(), "api.example");
    /// assert_eq!(key(&get("http://me:pw@api.example:8080/")).unwrap(), "api.example:8080");
    /// let from_host = Request::get("/v1").header("host", "api.example").body(()).unwrap();
    /// assert_eq!(key(&from_host).unwrap(), "api.example");
    /// assert_eq!(key(&get("/v1")), None);
    ///
    /// let or_default = Authority::new().fallback(AuthorityKey::from_static("unknown.invalid"));
    /// assert_eq!(or_default.extract(&get("/v1")).unwrap(), "unknown.invalid");
    /// ```
    #[derive(Debug, Clone, Default)]
    pub struct Authority {
        fallback: Option<AuthorityKey>,
    }

    impl Authority {
        /// The URI's authority, else the `Host` header's; requests with neither pass
        /// through unprotected.
        pub const fn new() -> Self {
            Self { fallback: None }
        }

        /// Guards requests with no authority with the breaker of `key` instead of letting
        /// them through unprotected.
        pub fn fallback(mut self, key: AuthorityKey) -> Self {
            self.fallback = Some(key);
            self
        }
    }

    impl<B> KeyExtractor<Request<B>> for Authority {
        type Key = AuthorityKey;

        #[inline]
        fn extract(&self, request: &Request<B>) -> Option<AuthorityKey> {
            let uri = request.uri();
            if let Some(authority) = uri.authority() {
                return Some(canonical(authority, uri.scheme()));
            }
            from_host_header(request).or_else(|| self.fallback.clone())
        }
    }

    /// A request's authority as [`Authority`] keys it: `host[:port]`, lowercase, without
    /// user info, without the scheme's default port.
    ///
    /// It holds an [`http::uri::Authority`] (taken from a request, a reference count, no
    /// copy) and hashes its bytes in one write, so a lookup costs about what a `&str` key's
    /// does.
    ///
    /// ```
    /// use tower_cutout::keyed::AuthorityKey;
    ///
    /// let key: AuthorityKey = "User@API.example:8080".parse()?;
    /// assert_eq!(key.as_str(), "api.example:8080");
    /// assert_eq!(key, AuthorityKey::from_static("api.example:8080"));
    /// assert_eq!(key.to_string(), "api.example:8080");
    /// # Ok::<(), http::uri::InvalidUri>(())
    /// ```
    #[derive(Clone)]
    pub struct AuthorityKey(uri::Authority);

    impl AuthorityKey {
        /// The key for a static authority (lowercased, without user info).
        ///
        /// # Panics
        ///
        /// If `authority` is not a valid URI authority, as
        /// [`http::uri::Authority::from_static`] does.
        pub fn from_static(authority: &'static str) -> Self {
            canonical(&uri::Authority::from_static(authority), None)
        }

        /// `host[:port]`.
        pub fn as_str(&self) -> &str {
            self.0.as_str()
        }

        /// The key as an [`http::uri::Authority`].
        pub fn as_authority(&self) -> &uri::Authority {
            &self.0
        }

        /// The host, without the port.
        pub fn host(&self) -> &str {
            self.0.host()
        }

        /// The port, if the authority has one (other than the scheme's default).
        pub fn port_u16(&self) -> Option<u16> {
            self.0.port_u16()
        }
    }

    impl PartialEq for AuthorityKey {
        #[inline]
        fn eq(&self, other: &Self) -> bool {
            // Both lowercase: bytes compare.
            self.as_str() == other.as_str()
        }
    }

    impl Eq for AuthorityKey {}

    impl Hash for AuthorityKey {
        #[inline]
        fn hash<H: Hasher>(&self, state: &mut H) {
            // One write, not `http::uri::Authority`'s byte-by-byte lowercasing hash.
            self.as_str().hash(state);
        }
    }

    impl PartialEq<str> for AuthorityKey {
        /// Case-insensitive, as authorities compare.
        fn eq(&self, other: &str) -> bool {
            self.as_str().eq_ignore_ascii_case(other)
        }
    }

    impl PartialEq<&str> for AuthorityKey {
        /// Case-insensitive, as authorities compare.
        fn eq(&self, other: &&str) -> bool {
            self.as_str().eq_ignore_ascii_case(other)
        }
    }

    impl From<uri::Authority> for AuthorityKey {
        /// The key for `authority` (lowercased, without user info; no scheme, so the port
        /// is kept).
        fn from(authority: uri::Authority) -> Self {
            canonical(&authority, None)
        }
    }

    impl FromStr for AuthorityKey {
        type Err = InvalidUri;

        fn from_str(s: &str) -> Result<Self, InvalidUri> {
            Ok(canonical(&s.parse::<uri::Authority>()?, None))
        }
    }

    impl fmt::Display for AuthorityKey {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.as_str())
        }
    }

    impl fmt::Debug for AuthorityKey {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_tuple("AuthorityKey").field(&self.as_str()).finish()
        }
    }

    #[cold]
    #[inline(never)]
    fn from_host_header<B>(request: &Request<B>) -> Option<AuthorityKey> {
        let value = request.headers().get(HOST)?;
        let authority = uri::Authority::try_from(value.as_bytes()).ok()?;
        Some(canonical(&authority, None))
    }

    /// `host[:port]` in lowercase: no user info, no port that is `scheme`'s default. A
    /// clone (a reference count, no copy) when `authority` is already so.
    #[inline]
    fn canonical(authority: &uri::Authority, scheme: Option<&Scheme>) -> AuthorityKey {
        let default_port = match scheme {
            Some(s) if *s == Scheme::HTTP => Some("80"),
            Some(s) if *s == Scheme::HTTPS => Some("443"),
            _ => None,
        };
        let s = authority.as_str();
        // The port follows the last ':', unless a ']' does (an IPv6 host without a port).
        let port = match s.rfind(':') {
            Some(i) if !s[i..].contains(']') => Some(&s[i + 1..]),
            _ => None,
        };
        let clean = !s.bytes().any(|b| b == b'@' || b.is_ascii_uppercase())
            && match port {
                None => true,
                // Empty, or leading zeros (`080`), or the default: the slow path decides.
                Some(p) => !p.is_empty() && !p.starts_with('0') && Some(p) != default_port,
            };
        if clean {
            return AuthorityKey(authority.clone());
        }
        rebuild(authority, default_port)
    }

    /// The slow path of [`canonical`]: capitals, user info, an empty port, leading zeros or
    /// a default port to drop.
    #[cold]
    #[inline(never)]
    fn rebuild(authority: &uri::Authority, default_port: Option<&str>) -> AuthorityKey {
        let default_port = default_port.and_then(|p| p.parse::<u16>().ok());
        let host = authority.host().to_ascii_lowercase();
        let text = match authority.port_u16().filter(|p| Some(*p) != default_port) {
            Some(port) => format!("{host}:{port}"),
            None => host,
        };
        if text == authority.as_str() {
            return AuthorityKey(authority.clone());
        }
        // A host and port cut from a valid authority form a valid one; keep the original
        // rather than panic if that ever failed.
        AuthorityKey(uri::Authority::try_from(text).unwrap_or_else(|_| authority.clone()))
    }
}
