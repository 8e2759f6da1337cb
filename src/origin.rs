//! Origins (scheme, host, port) that a token may be sent to.

use std::error::Error as StdError;
use std::fmt;
use std::str::FromStr;

use http::uri::{Scheme, Uri};

/// A web origin: scheme, host and port (RFC 6454), such as
/// `https://api.example.com` (port 443 implied).
///
/// Used with [`BearerAuthLayer::only_for_origins`](crate::BearerAuthLayer::only_for_origins)
/// to attach the token only to requests for the origins that should see it.
/// Matching ignores the case of the scheme and host and fills in the default
/// port of `http` (80) and `https` (443); anything else must match exactly, so
/// `https://api.example.com` and `https://api.example.com:8443` are different
/// origins, as are `http://` and `https://`.
///
/// ```
/// use http::Uri;
/// use tower_bearer::Origin;
///
/// let origin: Origin = "https://API.example.com".parse().unwrap();
/// assert!(origin.matches(&Uri::from_static("https://api.example.com/v1/things?x=1")));
/// assert!(origin.matches(&Uri::from_static("https://api.example.com:443/")));
/// assert!(!origin.matches(&Uri::from_static("http://api.example.com/")));
/// assert!(!origin.matches(&Uri::from_static("https://api.example.com:8443/")));
/// assert!(!origin.matches(&Uri::from_static("https://api.example.com.evil.net/")));
/// assert!(!origin.matches(&Uri::from_static("/relative/path")));
///
/// assert!("https://api.example.com/v1".parse::<Origin>().is_err()); // a path is not an origin
/// assert!("ftp://files.example.com".parse::<Origin>().is_err()); // no port, no default
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    scheme: Scheme,
    /// Lowercase, as `Uri::host` gives it (IPv6 in brackets).
    host: Box<str>,
    port: u16,
}

impl Origin {
    /// Parses `scheme://host[:port]` (a trailing `/` is allowed; a path,
    /// query or user info is not).
    pub fn parse(origin: &str) -> Result<Self, InvalidOrigin> {
        let invalid = |reason| InvalidOrigin {
            input: crate::redact::url(origin),
            reason,
        };
        let uri: Uri = origin.parse().map_err(|_| invalid("not a URI"))?;
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("user info is not part of an origin"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(invalid("a path or query is not part of an origin"));
        }
        Self::from_uri(&uri).ok_or_else(|| invalid("no scheme, or no port for this scheme"))
    }

    /// The origin a URI points to, if it is absolute and its port is known.
    ///
    /// ```
    /// use http::Uri;
    /// use tower_bearer::Origin;
    ///
    /// let origin = Origin::from_uri(&Uri::from_static("http://127.0.0.1:8080/token")).unwrap();
    /// assert_eq!(origin.to_string(), "http://127.0.0.1:8080");
    /// assert_eq!(origin.port(), 8080);
    /// ```
    pub fn from_uri(uri: &Uri) -> Option<Self> {
        let scheme = uri.scheme()?.clone();
        let host = uri.host().filter(|h| !h.is_empty())?;
        let port = uri.port_u16().or_else(|| default_port(&scheme))?;
        Some(Self {
            scheme,
            host: host.to_ascii_lowercase().into_boxed_str(),
            port,
        })
    }

    /// The scheme.
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// The host, lowercase.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `true` if `uri` is an absolute URI for this origin. Allocates nothing.
    #[inline]
    pub fn matches(&self, uri: &Uri) -> bool {
        let Some(scheme) = uri.scheme() else {
            return false;
        };
        *scheme == self.scheme
            && uri
                .host()
                .is_some_and(|host| host.eq_ignore_ascii_case(&self.host))
            && uri.port_u16().or_else(|| default_port(scheme)) == Some(self.port)
    }

    /// `true` if a URL of this scheme, host and port (the scheme's default
    /// filled in) is for this origin: for URL types other than `http::Uri`.
    #[cfg(feature = "reqwest-middleware")]
    pub(crate) fn matches_parts(
        &self,
        scheme: &str,
        host: Option<&str>,
        port: Option<u16>,
    ) -> bool {
        scheme == self.scheme.as_str()
            && host.is_some_and(|host| host.eq_ignore_ascii_case(&self.host))
            && port == Some(self.port)
    }
}

fn default_port(scheme: &Scheme) -> Option<u16> {
    if *scheme == Scheme::HTTPS {
        Some(443)
    } else if *scheme == Scheme::HTTP {
        Some(80)
    } else {
        None
    }
}

impl FromStr for Origin {
    type Err = InvalidOrigin;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for Origin {
    type Error = InvalidOrigin;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        if default_port(&self.scheme) != Some(self.port) {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

/// A string that is not an origin; see [`Origin::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidOrigin {
    input: String,
    reason: &'static str,
}

impl fmt::Display for InvalidOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not an origin: {}", self.input, self.reason)
    }
}

impl StdError for InvalidOrigin {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let o = Origin::parse("http://127.0.0.1:8080/").unwrap();
        assert!(o.matches(&Uri::from_static("http://127.0.0.1:8080/a/b")));
        assert!(!o.matches(&Uri::from_static("http://127.0.0.1:8081/a/b")));
        assert!(!o.matches(&Uri::from_static("http://localhost:8080/")));

        let v6 = Origin::parse("https://[::1]").unwrap();
        assert!(v6.matches(&Uri::from_static("https://[::1]:443/x")));
        assert_eq!(v6.to_string(), "https://[::1]");

        for bad in [
            "",
            "/path",
            "api.example.com",
            "https://user:pw@api.example.com",
            "https://api.example.com/v1",
            "https://api.example.com/?q",
            "wss://api.example.com",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
        assert!(Origin::parse("wss://api.example.com:443").is_ok());
    }

    #[test]
    fn error_names_the_input() {
        let err = Origin::parse("https://x.example/v1").unwrap_err();
        assert!(err.to_string().contains("https://x.example/v1"), "{err}");
    }
}
