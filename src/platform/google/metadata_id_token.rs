//! `MetadataIdToken`: an OpenID Connect ID token of the instance's service
//! account for an audience, from the Google metadata server.

use std::fmt;
use std::time::SystemTime;

use super::metadata_server::{metadata_server_setters, MetadataServer, MetadataSettings};
use crate::error::TokenError;
use crate::platform::error::SetupError;
use crate::platform::lifetime;
use crate::platform::settings::{local_http_setters, HttpSettings};
use crate::source::TokenSource;
use crate::token::AccessToken;

/// ID tokens of the service account attached to the instance, for one
/// audience: what Cloud Run, Cloud Functions and IAP-protected services
/// accept as a bearer token (the audience is the service's URL, or IAP's
/// OAuth client id). `GET
/// http://{host}/computeMetadata/v1/instance/service-accounts/{account}/identity?audience=…&format=full`
/// with `Metadata-Flavor: Google`, answered with the JWT itself. The token
/// lives until its `exp` claim (an hour), read without checking the
/// signature, which is the audience's business.
///
/// `format=full` asks for the `google` claim with the project and instance
/// (`compute_engine`), which some audiences check. The host and the
/// fail-fast behaviour are those of [`MetadataAccessToken`](super::MetadataAccessToken).
///
/// ```no_run
/// use tower_bearer::platform::google::MetadataIdToken;
/// use tower_bearer::BearerAuthLayer;
///
/// # fn main() -> Result<(), tower_bearer::platform::SetupError> {
/// // Calling another Cloud Run service as this one.
/// let source = MetadataIdToken::builder("https://billing-abc123-uc.a.run.app").build()?;
/// let layer = BearerAuthLayer::new(source);
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Clone)]
pub struct MetadataIdToken {
    server: MetadataServer,
    path_and_query: String,
}

impl MetadataIdToken {
    /// Starts configuring the source of ID tokens for `audience`.
    pub fn builder(audience: impl Into<String>) -> MetadataIdTokenBuilder {
        MetadataIdTokenBuilder {
            settings: MetadataSettings::default(),
            http: HttpSettings::default(),
            audience: audience.into(),
        }
    }

    /// The metadata server's host (and port) asked.
    pub fn host(&self) -> &str {
        self.server.host()
    }
}

impl TokenSource for MetadataIdToken {
    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        let answer = self.server.get(&self.path_and_query).await?;
        let endpoint = self.server.endpoint();
        let jwt = endpoint.text_token(&answer)?;
        let token = AccessToken::new(jwt);
        Ok(match lifetime::jwt_exp(jwt) {
            Some(exp) => lifetime::expiring_at(token, exp, SystemTime::now()),
            None => token,
        })
    }
}

impl fmt::Debug for MetadataIdToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetadataIdToken")
            .field("host", &self.server.host())
            .field("path", &self.path_and_query)
            .finish()
    }
}

/// Builds a [`MetadataIdToken`]; see [`MetadataIdToken::builder`].
///
/// ```
/// use tower_bearer::platform::google::MetadataIdToken;
/// use tower_bearer::platform::Env;
///
/// let source = MetadataIdToken::builder("https://billing-abc123-uc.a.run.app")
///     .account("caller@demo.iam.gserviceaccount.com")
///     .env(Env::new().with("GCE_METADATA_HOST", "127.0.0.1:8080"))
///     .build()
///     .unwrap();
/// assert_eq!(source.host(), "127.0.0.1:8080");
/// ```
#[must_use]
#[derive(Debug)]
pub struct MetadataIdTokenBuilder {
    settings: MetadataSettings,
    http: HttpSettings,
    audience: String,
}

impl MetadataIdTokenBuilder {
    metadata_server_setters!();
    local_http_setters!();

    /// Builds the source. Fails for an empty audience, a host or account
    /// that cannot be used, and without an HTTP client.
    pub fn build(self) -> Result<MetadataIdToken, SetupError> {
        if self.audience.is_empty() {
            return Err(SetupError::source(
                super::metadata_server::NAME,
                "an ID token needs an audience",
            ));
        }
        let account = self.settings.account()?;
        let query =
            serde_urlencoded::to_string([("audience", self.audience.as_str()), ("format", "full")])
                .expect("string pairs encode");
        Ok(MetadataIdToken {
            server: self.settings.server(&self.http, &[])?,
            path_and_query: format!("instance/service-accounts/{account}/identity?{query}"),
        })
    }
}
