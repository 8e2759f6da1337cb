//! Sender-constrained tokens (DPoP, RFC 9449): what the exchange needs of a
//! key that proves possession, whoever holds it.
//!
//! A token whose `token_type` is `DPoP` is bound to a key: every request that
//! carries it (`Authorization: DPoP <token>`) also carries a fresh proof
//! (`DPoP: <signed JWT>`) made with that key for that request's method and
//! URL. The front ends ask the token's [`DpopProver`] for that proof, and
//! tell it the nonces servers hand out (`DPoP-Nonce`). A bearer token has no
//! prover, and its requests cost nothing more.
//!
//! [`oauth2::DpopKey`](crate::oauth2) (feature `jwt`) is the prover the crate
//! provides, with a key pair in memory; implement the trait for a key held
//! elsewhere (an HSM, a cloud KMS).

use std::fmt;

use http::{HeaderName, Method};

use crate::error::TokenError;

/// The `DPoP` request header, which carries a proof.
pub const DPOP: HeaderName = HeaderName::from_static("dpop");

/// The `DPoP-Nonce` response header, by which a server hands out the nonce
/// that proofs sent to it must carry.
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// Makes DPoP proofs (RFC 9449 §4) with one key, and keeps the nonce each
/// server asked for.
///
/// ```
/// use std::sync::Arc;
/// use http::{HeaderValue, Method};
/// use tower_bearer::dpop::DpopProver;
/// use tower_bearer::{AccessToken, TokenError};
///
/// /// A prover whose key lives in an HSM (here: a stand-in).
/// #[derive(Debug)]
/// struct Hsm;
///
/// impl DpopProver for Hsm {
///     fn proof(
///         &self,
///         method: &Method,
///         url: &str,
///         access_token: Option<&str>,
///     ) -> Result<HeaderValue, TokenError> {
///         // Sign {"htm","htu","iat","jti","ath","nonce"} with the HSM's key.
///         # let _ = (method, url, access_token);
///         Ok(HeaderValue::from_static("eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.sig"))
///     }
///
///     fn learn_nonce(&self, _url: &str, _nonce: &str) {}
///
///     fn thumbprint(&self) -> &str {
///         "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
///     }
/// }
///
/// let token = AccessToken::new("t0k3n").bound_with_dpop(Arc::new(Hsm));
/// assert_eq!(token.dpop().unwrap().thumbprint(), "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
/// ```
pub trait DpopProver: fmt::Debug + Send + Sync + 'static {
    /// A fresh proof for one request: `htm` is `method`, `htu` is `url`
    /// without its query and fragment (the prover strips them), `iat` now,
    /// a `jti` never used before, `ath` the hash of `access_token` when one
    /// is given (requests to a resource server; none to a token endpoint),
    /// and the nonce last learned from `url`'s origin, if any.
    fn proof(
        &self,
        method: &Method,
        url: &str,
        access_token: Option<&str>,
    ) -> Result<http::HeaderValue, TokenError>;

    /// A server at `url`'s origin handed out `nonce` (`DPoP-Nonce`): proofs
    /// sent there carry it from now on.
    fn learn_nonce(&self, url: &str, nonce: &str);

    /// The key's JWK thumbprint (RFC 7638, base64url SHA-256): the `jkt` a
    /// bound token is bound to.
    fn thumbprint(&self) -> &str;
}

/// The target URI of a proof (RFC 9449 §4.2 `htu`): `url` without its query
/// and fragment.
///
/// ```
/// use tower_bearer::dpop::htu;
///
/// assert_eq!(htu("https://api.example/v1/things?page=2#top"), "https://api.example/v1/things");
/// assert_eq!(htu("https://api.example"), "https://api.example");
/// ```
pub fn htu(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
}

/// The origin of `url` (`scheme://host[:port]`), to keep nonces by: servers
/// hand them out per origin. (A prover of one's own can use
/// [`Origin::from_uri`](crate::Origin::from_uri).) Only `oauth2::DpopKey`
/// (feature `jwt`) keeps nonces.
#[cfg(any(test, feature = "jwt"))]
pub(crate) fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_origins() {
        let cases = [
            (
                "https://a.example/p/q?x=1#f",
                "https://a.example/p/q",
                "https://a.example",
            ),
            (
                "http://127.0.0.1:8080/",
                "http://127.0.0.1:8080/",
                "http://127.0.0.1:8080",
            ),
            (
                "http://127.0.0.1:8080",
                "http://127.0.0.1:8080",
                "http://127.0.0.1:8080",
            ),
            (
                "https://a.example?x",
                "https://a.example",
                "https://a.example",
            ),
            (
                "https://a.example#f",
                "https://a.example",
                "https://a.example",
            ),
        ];
        for (url, want_htu, want_origin) in cases {
            assert_eq!(htu(url), want_htu, "{url}");
            assert_eq!(origin_of(url), want_origin, "{url}");
        }
    }
}
