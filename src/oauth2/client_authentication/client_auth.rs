//! How the client proves who it is to the token endpoint (RFC 6749 §2.3):
//! a shared secret, or (feature `jwt`) a signed assertion (RFC 7523 §2.2).

use std::borrow::Cow;
#[cfg(feature = "jwt")]
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::HeaderValue;

#[cfg(feature = "jwt")]
use super::jwt_assertion::{JwtAssertion, Signer, DEFAULT_ASSERTION_LIFETIME};
use crate::error::TokenError;
use crate::oauth2::endpoint::form_urlencoded::{encode_into, Space};
#[cfg(feature = "jwt")]
use crate::oauth2::signing::signing_key::SigningKey;
#[cfg(feature = "jwt")]
use crate::oauth2::signing::wall_clock::WallClock;
use crate::oauth2::BuildError;
use crate::secret::Secret;

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
#[cfg(feature = "jwt")]
const JWT_BEARER_CLIENT_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The shortest client secret HS256 may sign with: a key as long as the hash
/// (RFC 7518 §3.2).
#[cfg(feature = "jwt")]
const MIN_HS256_SECRET_BYTES: usize = 32;

/// How the client authenticates to the token endpoint (RFC 6749 §2.3,
/// OpenID Connect Core §9).
///
/// Without a client secret, the shared-secret methods send only `client_id`
/// in the body (a public client, RFC 6749 §2.1).
///
/// ```
/// use tower_bearer::oauth2::{ClientAuth, TokenEndpoint};
///
/// // client_secret_post: the credentials travel as request parameters.
/// let endpoint = TokenEndpoint::builder("https://auth.example/token")
///     .client_id("id")
///     .client_secret("secret")
///     .client_auth(ClientAuth::RequestBody)
///     .build()
///     .unwrap();
/// assert_eq!(ClientAuth::RequestBody.method_name(), "client_secret_post");
/// # let _ = endpoint;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic` with the form-encoded id and secret
    /// (`client_secret_basic`, RFC 6749 §2.3.1). Spaces are encoded `%20`.
    #[default]
    Basic,
    /// `client_id` and `client_secret` as request parameters, in the form or
    /// JSON body (`client_secret_post`).
    RequestBody,
    /// Only `client_id` (if set) in the body: public clients, or custom exchanges.
    None,
    /// `private_key_jwt`: a JWT signed with the client's private key (RS256,
    /// PS256 or ES256), made afresh for each request, sent as
    /// `client_assertion` with `client_id`. Set it, with the key, through
    /// [`TokenEndpointBuilder::private_key_jwt`](crate::oauth2::TokenEndpointBuilder::private_key_jwt).
    #[cfg(feature = "jwt")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
    PrivateKeyJwt,
    /// `client_secret_jwt`: a JWT signed with HS256 and the client secret
    /// (at least 32 bytes), made afresh for each request; the secret itself
    /// is never sent.
    #[cfg(feature = "jwt")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
    ClientSecretJwt,
}

impl ClientAuth {
    /// The method's name in OpenID Connect and RFC 7591
    /// (`token_endpoint_auth_method`).
    pub fn method_name(self) -> &'static str {
        match self {
            ClientAuth::Basic => "client_secret_basic",
            ClientAuth::RequestBody => "client_secret_post",
            ClientAuth::None => "none",
            #[cfg(feature = "jwt")]
            ClientAuth::PrivateKeyJwt => "private_key_jwt",
            #[cfg(feature = "jwt")]
            ClientAuth::ClientSecretJwt => "client_secret_jwt",
        }
    }
}

/// The settings of JWT client assertions, gathered by the endpoint builder.
#[cfg(feature = "jwt")]
#[derive(Debug, Clone, Default)]
pub(crate) struct AssertionSettings {
    pub(crate) key: Option<SigningKey>,
    /// Defaults to the token endpoint URL.
    pub(crate) audience: Option<String>,
    pub(crate) lifetime: Option<Duration>,
    pub(crate) clock: WallClock,
}

/// What the client presents, decided once when the endpoint is built.
#[derive(Debug, Clone)]
enum Method {
    Basic,
    RequestBody,
    None,
    #[cfg(feature = "jwt")]
    Assertion(JwtAssertion),
}

/// The client as a token endpoint knows it: its id, its secret, and how it
/// presents them. `Debug` shows the secret and any key as `[redacted]`.
#[derive(Debug, Clone)]
pub(crate) struct ClientIdentity {
    id: Option<String>,
    secret: Option<Secret>,
    method: Method,
}

/// What one token request carries to authenticate the client.
pub(crate) struct Presented<'a> {
    /// An `Authorization` header value (Basic), marked sensitive.
    pub(crate) authorization: Option<HeaderValue>,
    /// Request parameters (`client_id`, `client_secret`, `client_assertion`, …).
    pub(crate) params: Vec<(&'static str, Cow<'a, str>)>,
}

impl ClientIdentity {
    /// The client `id` with `secret`, presented the `auth` way. JWT methods
    /// need an id, and a signing key or a long enough secret.
    pub(crate) fn new(
        id: Option<String>,
        secret: Option<Secret>,
        auth: ClientAuth,
        #[cfg(feature = "jwt")] assertion: AssertionSettings,
        #[cfg(feature = "jwt")] token_url: &str,
    ) -> Result<Self, BuildError> {
        let method = match auth {
            ClientAuth::Basic => Method::Basic,
            ClientAuth::RequestBody => Method::RequestBody,
            ClientAuth::None => Method::None,
            #[cfg(feature = "jwt")]
            ClientAuth::PrivateKeyJwt | ClientAuth::ClientSecretJwt => {
                let missing = |needs| BuildError::MissingCredential {
                    method: auth.method_name(),
                    needs,
                };
                let client_id = id
                    .as_deref()
                    .filter(|id| !id.is_empty())
                    .ok_or_else(|| missing("a client id (the assertion's `iss` and `sub`)"))?;
                let signer = if auth == ClientAuth::PrivateKeyJwt {
                    Signer::Key(
                        assertion
                            .key
                            .ok_or_else(|| missing("a signing key: use private_key_jwt(key)"))?,
                    )
                } else {
                    let secret = secret
                        .as_ref()
                        .filter(|s| s.expose().len() >= MIN_HS256_SECRET_BYTES)
                        .ok_or_else(|| {
                            missing("a client secret of at least 32 bytes (RFC 7518 §3.2)")
                        })?;
                    Signer::ClientSecret(ring::hmac::Key::new(
                        ring::hmac::HMAC_SHA256,
                        secret.expose().as_bytes(),
                    ))
                };
                let lifetime = assertion.lifetime.unwrap_or(DEFAULT_ASSERTION_LIFETIME);
                if lifetime.is_zero() {
                    return Err(BuildError::InvalidAssertion("a lifetime of zero"));
                }
                Method::Assertion(JwtAssertion::for_client(
                    signer,
                    client_id,
                    assertion.audience.unwrap_or_else(|| token_url.to_owned()),
                    lifetime,
                    assertion.clock,
                ))
            }
        };
        Ok(Self { id, secret, method })
    }

    pub(crate) fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    pub(crate) fn secret(&self) -> Option<&Secret> {
        self.secret.as_ref()
    }

    /// The client's credentials for one token request: an `Authorization`
    /// header, or parameters. A JWT method signs a new assertion each time;
    /// that fails only if the operating system's random number generator does.
    pub(crate) fn present(&self) -> Result<Presented<'_>, TokenError> {
        let mut presented = Presented {
            authorization: None,
            params: Vec::new(),
        };
        let id = self.id.as_deref();
        let secret = self.secret.as_ref().map(Secret::expose);
        match (&self.method, id, secret) {
            (Method::Basic, Some(id), Some(secret)) => {
                presented.authorization = Some(basic_auth(id, secret));
            }
            (Method::RequestBody, Some(id), Some(secret)) => {
                presented.params.push(("client_id", id.into()));
                presented.params.push(("client_secret", secret.into()));
            }
            #[cfg(feature = "jwt")]
            (Method::Assertion(assertion), id, _) => {
                if let Some(id) = id {
                    presented.params.push(("client_id", id.into()));
                }
                presented
                    .params
                    .push(("client_assertion_type", JWT_BEARER_CLIENT_ASSERTION.into()));
                let signed = assertion.sign()?;
                presented
                    .params
                    .push(("client_assertion", signed.expose().to_owned().into()));
            }
            (_, Some(id), _) => presented.params.push(("client_id", id.into())),
            (_, None, _) => {}
        }
        Ok(presented)
    }
}

/// `Basic base64(enc(id):enc(secret))` per RFC 6749 §2.3.1, marked sensitive.
fn basic_auth(client_id: &str, client_secret: &str) -> HeaderValue {
    let mut plain = String::new();
    encode_into(&mut plain, client_id, Space::Percent);
    plain.push(':');
    encode_into(&mut plain, client_secret, Space::Percent);
    let mut value = HeaderValue::try_from(format!("Basic {}", STANDARD.encode(plain)))
        .expect("base64 is a valid header value");
    value.set_sensitive(true);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_encoded_with_percent_spaces() {
        let value = basic_auth("id", "p@ss w0rd:+/%&=?");
        assert!(value.is_sensitive());
        let b64 = value.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let plain = String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap();
        assert_eq!(plain, "id:p%40ss%20w0rd%3A%2B%2F%25%26%3D%3F");
    }
}
