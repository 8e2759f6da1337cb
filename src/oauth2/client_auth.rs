//! How the client proves who it is to the token endpoint (RFC 6749 §2.3).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::HeaderValue;

use super::form_urlencoded::{encode_into, Space};
use crate::secret::Secret;

/// How the client authenticates to the token endpoint (RFC 6749 §2.3).
///
/// Without a client secret, every method sends only `client_id` in the body
/// (a public client, RFC 6749 §2.1).
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
}

/// The client as a token endpoint knows it: its id, its secret, and how it
/// presents them. `Debug` shows the secret as `[redacted]`.
#[derive(Debug, Clone)]
pub(super) struct ClientIdentity {
    id: Option<String>,
    secret: Option<Secret>,
    auth: ClientAuth,
}

impl ClientIdentity {
    pub(super) fn new(id: Option<String>, secret: Option<Secret>, auth: ClientAuth) -> Self {
        Self { id, secret, auth }
    }

    pub(super) fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    pub(super) fn secret(&self) -> Option<&Secret> {
        self.secret.as_ref()
    }

    /// Adds the client's credentials to a token request: as parameters, or
    /// as the returned `Authorization` header value.
    pub(super) fn authenticate<'a>(
        &'a self,
        params: &mut Vec<(&'a str, &'a str)>,
    ) -> Option<HeaderValue> {
        match (&self.id, &self.secret, self.auth) {
            (Some(id), Some(secret), ClientAuth::Basic) => {
                return Some(basic_auth(id, secret.expose()));
            }
            (Some(id), Some(secret), ClientAuth::RequestBody) => {
                params.push(("client_id", id));
                params.push(("client_secret", secret.expose()));
            }
            (Some(id), _, _) => params.push(("client_id", id)),
            (None, _, _) => {}
        }
        None
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
