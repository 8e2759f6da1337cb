//! An authorization server's metadata (RFC 8414 §2, OpenID Connect
//! Discovery §3): its endpoints and what it supports, checked against the
//! issuer it was asked for.

use std::fmt;

use serde_json::{Map, Value};

use crate::oauth2::browser_flow::authorization_code::AuthorizationCode;
use crate::oauth2::browser_flow::uri_reference::UriReference;
use crate::oauth2::client_authentication::client_auth::ClientAuth;
use crate::oauth2::transport::http_client::HttpClient;
use crate::oauth2::transport::secure_url;
use crate::oauth2::{BuildError, DiscoveryError};
use crate::oauth2::{TokenEndpoint, TokenEndpointBuilder};
use crate::redact;

/// What an authorization server says about itself (RFC 8414 §2, OpenID
/// Connect Discovery §3), as [`Discovery`](crate::oauth2::Discovery) found it: its
/// endpoints and what it supports, ready to configure a token endpoint and
/// an authorization-code flow.
///
/// ```
/// use tower_bearer::oauth2::{ClientAuth, Discovery};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let metadata = Discovery::new("https://idp.example").parse(br#"{
///     "issuer": "https://idp.example",
///     "authorization_endpoint": "https://idp.example/authorize",
///     "token_endpoint": "https://idp.example/token",
///     "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_post"],
///     "authorization_response_iss_parameter_supported": true,
///     "code_challenge_methods_supported": ["S256"]
/// }"#)?;
/// assert_eq!(metadata.token_endpoint(), "https://idp.example/token");
/// assert_eq!(metadata.client_auth(), Some(ClientAuth::RequestBody));
///
/// let endpoint = metadata.token_endpoint_builder().client_id("app").client_secret("s").build()?;
/// let flow = metadata.authorization_code(endpoint)?.redirect_uri("https://app.example/cb");
/// let request = flow.start();
/// assert!(request.url().starts_with("https://idp.example/authorize?response_type=code"));
/// // The server promised `iss`: a callback without it will be refused.
/// assert!(request.pending().issuer_required());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AuthorizationServerMetadata {
    issuer: String,
    authorization_endpoint: Option<String>,
    token_endpoint: String,
    token_endpoint_auth_methods_supported: Vec<String>,
    code_challenge_methods_supported: Vec<String>,
    iss_parameter_supported: bool,
    fields: Map<String, Value>,
    /// How the document was fetched, for the endpoint built from it.
    http: Option<HttpClient>,
    allow_insecure_http: bool,
}

impl AuthorizationServerMetadata {
    /// Reads a metadata document fetched for `expected_issuer` (RFC 8414 §3.3).
    pub(crate) fn parse(
        expected_issuer: &str,
        document: &[u8],
        http: Option<HttpClient>,
        allow_insecure_http: bool,
    ) -> Result<Self, DiscoveryError> {
        let invalid = |reason: &str| DiscoveryError::InvalidDocument(reason.to_owned());
        let fields = match serde_json::from_slice::<Value>(document) {
            Ok(Value::Object(fields)) => fields,
            Ok(_) => return Err(invalid("not a JSON object")),
            Err(_) => return Err(invalid("not JSON")),
        };
        let issuer = match fields.get("issuer") {
            Some(Value::String(issuer)) => issuer.clone(),
            Some(_) => return Err(invalid("`issuer` is not a string")),
            None => return Err(invalid("no `issuer`")),
        };
        if issuer != expected_issuer {
            return Err(DiscoveryError::IssuerMismatch {
                expected: expected_issuer.to_owned(),
                found: redact::server_text(&issuer, &[]),
            });
        }
        let endpoint = |field: &'static str| -> Result<Option<String>, DiscoveryError> {
            let url = match fields.get(field) {
                None | Some(Value::Null) => return Ok(None),
                Some(Value::String(url)) => url,
                Some(_) => return Err(invalid(&format!("`{field}` is not a string"))),
            };
            secure_url::parse(url, allow_insecure_http)
                .map_err(|error| DiscoveryError::InvalidEndpoint { field, error })?;
            if UriReference::split(url).fragment.is_some() {
                return Err(DiscoveryError::InvalidEndpoint {
                    field,
                    error: BuildError::InvalidUrl {
                        url: redact::url(url),
                        reason: "an endpoint has no fragment (RFC 6749 §3.1)",
                    },
                });
            }
            Ok(Some(url.clone()))
        };
        let token_endpoint =
            endpoint("token_endpoint")?.ok_or_else(|| invalid("no `token_endpoint`"))?;
        let authorization_endpoint = endpoint("authorization_endpoint")?;
        let strings = |field: &str, default: &[&str]| -> Result<Vec<String>, DiscoveryError> {
            match fields.get(field) {
                None | Some(Value::Null) => Ok(default.iter().map(|s| (*s).to_owned()).collect()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| item.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| invalid(&format!("`{field}` is not a list of strings"))),
                Some(_) => Err(invalid(&format!("`{field}` is not a list of strings"))),
            }
        };
        // RFC 8414 §2: absent means `client_secret_basic`.
        let token_endpoint_auth_methods_supported = strings(
            "token_endpoint_auth_methods_supported",
            &["client_secret_basic"],
        )?;
        let code_challenge_methods_supported = strings("code_challenge_methods_supported", &[])?;
        let iss_parameter_supported =
            match fields.get("authorization_response_iss_parameter_supported") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(supported)) => *supported,
                Some(_) => {
                    return Err(invalid(
                        "`authorization_response_iss_parameter_supported` is not a boolean",
                    ))
                }
            };
        Ok(Self {
            issuer,
            authorization_endpoint,
            token_endpoint,
            token_endpoint_auth_methods_supported,
            code_challenge_methods_supported,
            iss_parameter_supported,
            fields,
            http,
            allow_insecure_http,
        })
    }

    /// The issuer identifier, exactly as asked for.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `token_endpoint`.
    pub fn token_endpoint(&self) -> &str {
        &self.token_endpoint
    }

    /// `authorization_endpoint`, if the server has one.
    pub fn authorization_endpoint(&self) -> Option<&str> {
        self.authorization_endpoint.as_deref()
    }

    /// `token_endpoint_auth_methods_supported` (`client_secret_basic` when
    /// the document leaves it out, as RFC 8414 §2 says).
    pub fn token_endpoint_auth_methods_supported(&self) -> &[String] {
        &self.token_endpoint_auth_methods_supported
    }

    /// `code_challenge_methods_supported`; empty when the document leaves
    /// it out, which says nothing about PKCE support.
    pub fn code_challenge_methods_supported(&self) -> &[String] {
        &self.code_challenge_methods_supported
    }

    /// `authorization_response_iss_parameter_supported` (RFC 9207): whether
    /// the server puts `iss` in every authorization response.
    pub fn authorization_response_iss_parameter_supported(&self) -> bool {
        self.iss_parameter_supported
    }

    /// Any field of the document, as sent (`revocation_endpoint`,
    /// `scopes_supported`, `userinfo_endpoint`, …).
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.fields.get(name)
    }

    /// The client authentication this crate would use with this server: the
    /// first of `client_secret_basic`, `client_secret_post` and `none` the
    /// server supports; `None` if it supports none of them.
    pub fn client_auth(&self) -> Option<ClientAuth> {
        preferred_client_auth(&self.token_endpoint_auth_methods_supported)
    }

    /// A [`TokenEndpoint`] builder for `token_endpoint`, with the HTTP client
    /// and `allow_insecure_http` the document was fetched with, and the
    /// [`client_auth`](Self::client_auth) chosen. Add the client's
    /// credentials and build.
    pub fn token_endpoint_builder(&self) -> TokenEndpointBuilder {
        let mut builder = TokenEndpoint::builder(self.token_endpoint.clone())
            .allow_insecure_http(self.allow_insecure_http);
        if let Some(http) = &self.http {
            builder = builder.http_client(http.clone());
        }
        if let Some(auth) = self.client_auth() {
            builder = builder.client_auth(auth);
        }
        builder
    }

    /// An authorization-code flow sending users to `authorization_endpoint`
    /// and exchanging codes at `endpoint`, which checks the `iss` of every
    /// callback against this issuer (RFC 9207), and requires it when the
    /// server says it always sends it.
    pub fn authorization_code(
        &self,
        endpoint: TokenEndpoint,
    ) -> Result<AuthorizationCode, DiscoveryError> {
        let url = self
            .authorization_endpoint
            .clone()
            .ok_or(DiscoveryError::MissingEndpoint("authorization_endpoint"))?;
        let flow = AuthorizationCode::new(url, endpoint).map_err(|error| {
            DiscoveryError::InvalidEndpoint {
                field: "authorization_endpoint",
                error,
            }
        })?;
        Ok(if self.iss_parameter_supported {
            flow.require_issuer(self.issuer.clone())
        } else {
            flow.expect_issuer(self.issuer.clone())
        })
    }
}

/// The first method of ours the server supports, in the order of how much
/// each protects: the secret in a header over the secret in the body over none.
fn preferred_client_auth(supported: &[String]) -> Option<ClientAuth> {
    [
        ("client_secret_basic", ClientAuth::Basic),
        ("client_secret_post", ClientAuth::RequestBody),
        ("none", ClientAuth::None),
    ]
    .into_iter()
    .find(|(name, _)| supported.iter().any(|s| s == name))
    .map(|(_, auth)| auth)
}

impl fmt::Debug for AuthorizationServerMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationServerMetadata")
            .field("issuer", &self.issuer)
            .field(
                "authorization_endpoint",
                &self.authorization_endpoint.as_deref().map(redact::url),
            )
            .field("token_endpoint", &redact::url(&self.token_endpoint))
            .field(
                "token_endpoint_auth_methods_supported",
                &self.token_endpoint_auth_methods_supported,
            )
            .field(
                "authorization_response_iss_parameter_supported",
                &self.iss_parameter_supported,
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://idp.example";

    fn parse(document: &str) -> Result<AuthorizationServerMetadata, DiscoveryError> {
        AuthorizationServerMetadata::parse(ISSUER, document.as_bytes(), None, false)
    }

    #[test]
    fn documents_that_are_refused() {
        let minimal =
            r#""issuer":"https://idp.example","token_endpoint":"https://idp.example/token""#;
        let cases: Vec<(String, &str)> = vec![
            ("[]".into(), "invalid metadata: not a JSON object"),
            ("<html>".into(), "invalid metadata: not JSON"),
            (
                r#"{"token_endpoint":"https://idp.example/token"}"#.into(),
                "no `issuer`",
            ),
            (r#"{"issuer":7}"#.into(), "`issuer` is not a string"),
            // RFC 8414 §3.3: exactly the issuer asked for.
            (
                r#"{"issuer":"https://evil.example","token_endpoint":"https://evil.example/t"}"#
                    .into(),
                "names issuer `https://evil.example`",
            ),
            (
                r#"{"issuer":"https://idp.example/","token_endpoint":"https://idp.example/t"}"#
                    .into(),
                "names issuer `https://idp.example/`",
            ),
            (
                r#"{"issuer":"https://idp.example"}"#.into(),
                "no `token_endpoint`",
            ),
            (
                r#"{"issuer":"https://idp.example","token_endpoint":"http://idp.example/token"}"#
                    .into(),
                "`token_endpoint`: refusing plain-http",
            ),
            (
                r#"{"issuer":"https://idp.example","token_endpoint":"/token"}"#.into(),
                "`token_endpoint`: invalid URL",
            ),
            (
                format!(r#"{{{minimal},"authorization_endpoint":"https://idp.example/a#f"}}"#),
                "no fragment",
            ),
            (
                format!(r#"{{{minimal},"authorization_endpoint":"http://idp.example/a"}}"#),
                "`authorization_endpoint`: refusing plain-http",
            ),
            (
                format!(
                    r#"{{{minimal},"token_endpoint_auth_methods_supported":"client_secret_basic"}}"#
                ),
                "not a list of strings",
            ),
            (
                format!(r#"{{{minimal},"code_challenge_methods_supported":["S256",1]}}"#),
                "not a list of strings",
            ),
            (
                format!(r#"{{{minimal},"authorization_response_iss_parameter_supported":"true"}}"#),
                "not a boolean",
            ),
        ];
        for (document, reason) in cases {
            let err = parse(&document).unwrap_err();
            assert!(err.to_string().contains(reason), "{document}: {err}");
            assert!(err.is_permanent());
        }
    }

    #[test]
    fn defaults_and_choices() {
        let metadata = parse(
            r#"{"issuer":"https://idp.example","token_endpoint":"https://idp.example/token","x_custom":1}"#,
        )
        .unwrap();
        assert_eq!(
            metadata.token_endpoint_auth_methods_supported(),
            ["client_secret_basic"]
        );
        assert_eq!(metadata.client_auth(), Some(ClientAuth::Basic));
        assert!(!metadata.authorization_response_iss_parameter_supported());
        assert!(metadata.code_challenge_methods_supported().is_empty());
        assert_eq!(metadata.field("x_custom"), Some(&Value::from(1)));
        let endpoint = metadata.token_endpoint_builder().build().unwrap();
        assert!(matches!(
            metadata.authorization_code(endpoint),
            Err(DiscoveryError::MissingEndpoint("authorization_endpoint"))
        ));
    }

    #[test]
    fn client_authentication_is_the_first_supported_of_ours() {
        let cases: &[(&[&str], Option<ClientAuth>)] = &[
            (
                &["client_secret_basic", "client_secret_post"],
                Some(ClientAuth::Basic),
            ),
            (
                &["client_secret_post", "client_secret_basic"],
                Some(ClientAuth::Basic),
            ),
            (
                &["private_key_jwt", "client_secret_post"],
                Some(ClientAuth::RequestBody),
            ),
            (&["none"], Some(ClientAuth::None)),
            (&["private_key_jwt", "tls_client_auth"], None),
            (&[], None),
        ];
        for (supported, expected) in cases {
            let supported: Vec<String> = supported.iter().map(|s| (*s).to_owned()).collect();
            assert_eq!(
                preferred_client_auth(&supported),
                *expected,
                "{supported:?}"
            );
        }
    }

    #[test]
    fn loopback_http_endpoints_and_insecure_ones_when_allowed() {
        let document =
            r#"{"issuer":"http://127.0.0.1:8080","token_endpoint":"http://127.0.0.1:8080/token"}"#;
        assert!(AuthorizationServerMetadata::parse(
            "http://127.0.0.1:8080",
            document.as_bytes(),
            None,
            false
        )
        .is_ok());
        let document =
            r#"{"issuer":"https://idp.example","token_endpoint":"http://idp.example/token"}"#;
        assert!(
            AuthorizationServerMetadata::parse(ISSUER, document.as_bytes(), None, true).is_ok()
        );
    }
}
