//! The head of a request (method, URI, version, headers, extensions), kept so
//! that the request can be built again for a replay.
//!
//! The URI and the headers are copied as bytes into a [`PooledBuf`], not
//! cloned: cloning a `HeaderMap` allocates its table (two or three
//! allocations per request), and cloning a header value or a URI built from a
//! string (`.header("accept", "application/json")`, `Uri::builder()`, the
//! usual ways) allocates too, because its bytes are not shared yet. Copying a
//! few hundred bytes into a reused buffer costs less than those allocations
//! (and than the reference-count traffic of cloning), and the URI and header
//! map are rebuilt only on the rare replay. The method and the extensions are
//! cloned: free for standard methods and empty extensions; extensions that
//! are there cost their clone, a new map and a box per value, which no
//! other way of keeping them avoids (`WithoutExtensions` leaves them out).

use std::fmt;

use http::uri::{Authority, Parts, PathAndQuery, Scheme};
use http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};

use super::pool::PooledBuf;

/// In the URI's length word, a part's length (16 bits each: `http` limits
/// them to 65,534 bytes) or one of these.
const ABSENT: u64 = 0xffff;
/// The scheme is `http`, or `https`: said in the length word, not copied.
const HTTP: u64 = 0xfffe;
const HTTPS: u64 = 0xfffd;
/// In a header's length word: where the name's length starts (names are at
/// most 64 KiB long, so it takes the top 16 bits).
const NAME_LEN_SHIFT: u32 = 48;
/// In a header's length word: the value is sensitive.
const SENSITIVE: u64 = 1 << 47;
/// In a header's length word: the value's length.
const VALUE_LEN: u64 = SENSITIVE - 1;

/// A request's head, kept for a replay; see [the module docs](self).
///
/// Its bytes hold the URI (a length word: the lengths of the scheme, the
/// authority, the path and query, 16 bits each, [`ABSENT`] for a part it has
/// not, [`HTTP`] or [`HTTPS`] for a scheme that need not be copied; then the
/// parts) and then each header (a length word: the name's length in the top
/// 16 bits, the [`SENSITIVE`] bit, the value's length below it; then the name
/// and the value). A word per part, not a copy of each: it is the
/// number of copies, more than their size, that costs.
pub(super) struct KeptHead {
    method: Method,
    version: Version,
    extensions: Extensions,
    /// How many header values the bytes hold.
    headers: usize,
    bytes: PooledBuf,
}

impl KeptHead {
    /// Copies the head of `request`; `None` (no replay) only for a URI part
    /// longer than `http` allows.
    pub(super) fn of<B>(request: &Request<B>) -> Option<Self> {
        let mut bytes = PooledBuf::take();
        put_uri(&mut bytes, request.uri())?;
        for (name, value) in request.headers() {
            put_header(&mut bytes, name.as_str().as_bytes(), value);
        }
        Some(Self {
            method: request.method().clone(),
            version: request.version(),
            extensions: request.extensions().clone(),
            headers: request.headers().len(),
            bytes,
        })
    }

    /// The request again, with `body`. `None` (no replay) only for a value
    /// that the safe constructors of `http` would not have accepted.
    pub(super) fn into_request<B>(self, body: B) -> Option<Request<B>> {
        let mut bytes = Reader(&self.bytes);
        let uri = bytes.uri()?;
        let headers = bytes.headers(self.headers)?;
        let mut request = Request::new(body);
        *request.method_mut() = self.method;
        *request.uri_mut() = uri;
        *request.version_mut() = self.version;
        *request.headers_mut() = headers;
        *request.extensions_mut() = self.extensions;
        Some(request)
    }
}

impl fmt::Debug for KeptHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values are not printed, nor the URI's query or user info:
        // they may hold credentials.
        let uri = Reader(&self.bytes)
            .uri()
            .map(|uri| crate::redact::url(&uri.to_string()));
        f.debug_struct("KeptHead")
            .field("method", &self.method)
            .field("uri", &uri)
            .field("version", &self.version)
            .field("headers", &self.headers)
            .field("extensions", &self.extensions)
            .finish()
    }
}

fn put_uri(bytes: &mut Vec<u8>, uri: &Uri) -> Option<()> {
    let len = |part: Option<&str>| match part {
        None => Some(ABSENT),
        Some(part) => u64::try_from(part.len()).ok().filter(|&len| len < HTTPS),
    };
    let (scheme, scheme_len) = match uri.scheme_str() {
        None => (None, ABSENT),
        Some("http") => (None, HTTP),
        Some("https") => (None, HTTPS),
        other => (other, len(other)?),
    };
    let authority = uri.authority().map(Authority::as_str);
    let path = uri.path_and_query().map(PathAndQuery::as_str);
    let word = scheme_len | len(authority)? << 16 | len(path)? << 32;
    bytes.extend_from_slice(&word.to_le_bytes());
    if let Some(scheme) = scheme {
        bytes.extend_from_slice(scheme.as_bytes());
    }
    if let Some(authority) = authority {
        bytes.extend_from_slice(authority.as_bytes());
    }
    if let Some(path) = path {
        bytes.extend_from_slice(path.as_bytes());
    }
    Some(())
}

#[inline(always)]
fn put_header(bytes: &mut Vec<u8>, name: &[u8], value: &HeaderValue) {
    let sensitive = if value.is_sensitive() { SENSITIVE } else { 0 };
    // No value is 128 TiB long, no name longer than 64 KiB.
    let word = (name.len() as u64) << NAME_LEN_SHIFT | sensitive | value.len() as u64;
    bytes.extend_from_slice(&word.to_le_bytes());
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(value.as_bytes());
}

/// Reads back what [`put_uri`] and [`put_header`] wrote.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn word<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (word, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*word)
    }

    fn bytes(&mut self, len: usize) -> Option<&'a [u8]> {
        let bytes = self.0.get(..len)?;
        self.0 = &self.0[len..];
        Some(bytes)
    }

    /// The URI again, from parts that `http` printed itself, so they parse.
    fn uri(&mut self) -> Option<Uri> {
        let word = u64::from_le_bytes(self.word()?);
        let [scheme, authority, path] = [0, 16, 32].map(|shift| word >> shift & 0xffff);
        let mut part = |len: u64| match len {
            ABSENT => Some(None),
            len => self.bytes(len as usize).map(Some),
        };
        let mut parts = Parts::default();
        parts.scheme = match scheme {
            HTTP => Some(Scheme::HTTP),
            HTTPS => Some(Scheme::HTTPS),
            len => part(len)?.map(Scheme::try_from).transpose().ok()?,
        };
        if let Some(authority) = part(authority)? {
            parts.authority = Some(Authority::try_from(authority).ok()?);
        }
        if let Some(path) = part(path)? {
            parts.path_and_query = Some(PathAndQuery::try_from(path).ok()?);
        }
        Uri::from_parts(parts).ok()
    }

    fn headers(&mut self, count: usize) -> Option<HeaderMap> {
        let mut map = HeaderMap::with_capacity(count);
        for _ in 0..count {
            let word = u64::from_le_bytes(self.word()?);
            let name =
                HeaderName::from_bytes(self.bytes((word >> NAME_LEN_SHIFT) as usize)?).ok()?;
            let mut value =
                HeaderValue::from_bytes(self.bytes((word & VALUE_LEN) as usize)?).ok()?;
            value.set_sensitive(word & SENSITIVE != 0);
            map.append(name, value);
        }
        Some(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn again<B>(request: &Request<B>, body: B) -> Request<B> {
        KeptHead::of(request).unwrap().into_request(body).unwrap()
    }

    #[test]
    fn the_head_is_kept_exactly() {
        let mut secret = HeaderValue::from_static("session=abc");
        secret.set_sensitive(true);
        let req = Request::builder()
            .method(Method::PUT)
            .uri("http://127.0.0.1:9/a/b?c=d")
            .version(Version::HTTP_2)
            .header("x-custom", "one")
            .header("accept", "text/plain")
            .header("x-custom", "two")
            .header("x-bytes", HeaderValue::from_bytes(b"caf\xe9\tok").unwrap())
            .header("cookie", secret)
            .extension(7u32)
            .body(())
            .unwrap();
        let kept = KeptHead::of(&req).unwrap();
        let debug = format!("{kept:?}");
        assert!(
            !debug.contains("session") && !debug.contains("c=d"),
            "{debug}"
        );
        let again = kept.into_request("body");
        let again = again.unwrap();
        assert_eq!(again.method(), Method::PUT);
        assert_eq!(again.uri(), req.uri());
        assert_eq!(again.version(), Version::HTTP_2);
        assert_eq!(again.headers(), req.headers());
        let order = |headers: &HeaderMap| {
            headers
                .iter()
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(order(again.headers()), order(req.headers()));
        assert!(again.headers()["cookie"].is_sensitive());
        assert!(!again.headers()["accept"].is_sensitive());
        assert_eq!(again.extensions().get::<u32>(), Some(&7));
        assert_eq!(*again.body(), "body");
    }

    #[test]
    fn uris_of_every_form_are_kept_exactly() {
        let built = Uri::builder()
            .scheme("https")
            .authority("api.example:8443")
            .path_and_query("/v1/x?y=z")
            .build()
            .unwrap();
        let uris = [
            Uri::from_static("http://127.0.0.1:8080/a/b?c=d&e"),
            Uri::from_static("http://host"),
            Uri::from_static("http://[::1]:9/x"),
            Uri::from_static("grpc+h2://svc.internal/pkg.Svc/Method"),
            Uri::from_static("/origin/form?q=1"),
            Uri::from_static("/"),
            Uri::from_static("*"),
            Uri::from_static("example.com:443"),
            "http://user@host:1/p%20q?r=%C3%A9".parse().unwrap(),
            built,
            Uri::default(),
        ];
        for uri in uris {
            let again = again(&Request::get(uri.clone()).body(()).unwrap(), ());
            assert_eq!(again.uri(), &uri);
            assert_eq!(again.uri().to_string(), uri.to_string());
            assert_eq!(
                again.uri().path_and_query().map(|p| p.as_str()),
                uri.path_and_query().map(|p| p.as_str())
            );
        }
    }

    #[test]
    fn a_head_without_headers_is_kept() {
        let req = Request::get("/").body(()).unwrap();
        assert!(again(&req, ()).headers().is_empty());
    }

    #[test]
    fn bytes_that_do_not_read_back_give_no_request() {
        let uri = |scheme: &[u8]| {
            let word = scheme.len() as u64 | ABSENT << 16 | ABSENT << 32;
            Reader(&[&word.to_le_bytes()[..], scheme].concat()).uri()
        };
        assert!(Reader(b"").uri().is_none());
        assert!(Reader(&9u64.to_le_bytes()).uri().is_none());
        assert!(uri(b"h t!").is_none());
        assert!(uri(b"").is_none());

        let word = (3u64 << NAME_LEN_SHIFT | 1).to_le_bytes();
        let header = |bytes: &[u8]| Reader(&[&word[..], bytes].concat()).headers(1);
        assert!(header(b"x-y").is_none());
        assert!(header(b"x y!").is_none());
        assert!(header(b"x-y\0").is_none());
        assert_eq!(header(b"x-yz").unwrap()["x-y"], "z");
    }
}
