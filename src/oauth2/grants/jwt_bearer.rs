//! The JWT-bearer authorization grant (RFC 7523 §2.1): a signed assertion
//! is the grant.

use std::fmt;

use super::grant_params::{grant_setters, GrantParams};
use crate::error::TokenError;
use crate::oauth2::client_authentication::jwt_assertion::JwtAssertion;
use crate::oauth2::endpoint::token_endpoint::{FreshParam, TokenEndpoint};
use crate::source::TokenSource;
use crate::token::AccessToken;

/// `grant_type` of the JWT-bearer grant.
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Obtains tokens with the JWT-bearer grant (RFC 7523 §2.1): each fetch signs
/// a new [`JwtAssertion`] (its own `jti`, `iat` now) and sends it as
/// `assertion`, with the `scope` and any other parameter.
///
/// The token endpoint may authenticate the client as well (RFC 7523 allows
/// it) or not ([`ClientAuth::None`](crate::oauth2::ClientAuth::None), as Google
/// does); [`GoogleServiceAccount`](crate::oauth2::GoogleServiceAccount) sets all of
/// this up from a key file.
///
/// ```
/// use tower_bearer::oauth2::{ClientAuth, JwtAssertion, JwtBearer, SigningAlgorithm, SigningKey, TokenEndpoint};
/// use tower_bearer::BearerAuthLayer;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pem = std::fs::read_to_string("tests/fixtures/keys/rsa.pkcs8.pem")?;
/// let key = SigningKey::from_pem(SigningAlgorithm::Rs256, &pem)?.with_kid("k1");
/// let token_url = "https://auth.example.com/oauth2/token";
/// let assertion = JwtAssertion::builder(key)
///     .issuer("reporting-service")
///     .subject("alice@example.com")
///     .audience(token_url)
///     .build()?;
/// let endpoint = TokenEndpoint::builder(token_url).client_auth(ClientAuth::None).build()?;
/// let layer = BearerAuthLayer::new(JwtBearer::new(endpoint, assertion).scope("reports:read"));
/// # let _ = layer; Ok(()) }
/// ```
pub struct JwtBearer {
    endpoint: TokenEndpoint,
    assertion: JwtAssertion,
    params: GrantParams,
}

impl JwtBearer {
    /// A source that presents assertions made from `assertion` at `endpoint`.
    pub fn new(endpoint: TokenEndpoint, assertion: JwtAssertion) -> Self {
        Self {
            endpoint,
            assertion,
            params: GrantParams::default(),
        }
    }

    grant_setters!(params);

    /// The endpoint asked.
    pub fn endpoint(&self) -> &TokenEndpoint {
        &self.endpoint
    }
}

impl TokenSource for JwtBearer {
    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        let mut params = vec![("grant_type", JWT_BEARER_GRANT)];
        self.params.append_to(&mut params);
        // Signed for each request sent: a DPoP nonce challenge's second
        // request carries a new assertion (a server may take a `jti` once).
        let sign = || Ok(self.assertion.sign()?);
        let assertion = FreshParam {
            name: "assertion",
            make: &sign,
        };
        let response = self.endpoint.request_with(&params, Some(assertion)).await?;
        Ok(response.to_access_token())
    }
}

impl fmt::Debug for JwtBearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtBearer")
            .field("endpoint", &self.endpoint)
            .field("assertion", &self.assertion)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}
