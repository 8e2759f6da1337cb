//! `ApplicationDefault`: Google's application default credentials, chosen
//! from the environment as Google's libraries choose them.

use std::fmt;
use std::path::PathBuf;

use serde_json::{Map, Value};

use super::external_account::{read_config, ExternalAccount};
use super::metadata_access_token::{MetadataAccessToken, MetadataAccessTokenBuilder};
use crate::error::TokenError;
#[cfg(feature = "jwt")]
use crate::oauth2::{GoogleServiceAccount, ServiceAccountKey};
use crate::platform::error::{SetupError, Skipped};
use crate::platform::settings::{chooser_setters, HttpSettings};
use crate::platform::Env;
use crate::source::TokenSource;
use crate::token::AccessToken;

/// How the key-file candidate is named in [`Skipped`] lists.
const KEY_FILE: &str = "key file";

/// Which credential [`ApplicationDefault`] chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GoogleCredential {
    /// A service-account key file (`"type": "service_account"`), through
    /// [`GoogleServiceAccount`](crate::oauth2::GoogleServiceAccount).
    ServiceAccountKey,
    /// Workload identity federation (`"type": "external_account"`), through
    /// [`ExternalAccount`](super::ExternalAccount).
    ExternalAccount,
    /// The metadata server, through [`MetadataAccessToken`](super::MetadataAccessToken).
    MetadataServer,
}

/// What the environment says to use, before any file is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    KeyFile(PathBuf),
    MetadataServer,
}

/// Google's order: the file `GOOGLE_APPLICATION_CREDENTIALS` names, else
/// the metadata server. (gcloud's own user credentials, the third place
/// Google's libraries look, are not read here.)
pub(crate) fn choose(env: &Env) -> (Decision, Vec<Skipped>) {
    match env.var("GOOGLE_APPLICATION_CREDENTIALS") {
        Some(path) => (Decision::KeyFile(PathBuf::from(path)), Vec::new()),
        None => (
            Decision::MetadataServer,
            vec![Skipped::new(
                KEY_FILE,
                "GOOGLE_APPLICATION_CREDENTIALS is not set",
            )],
        ),
    }
}

/// Which kind of credential file a key file is, by its `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyFileKind {
    ServiceAccount,
    ExternalAccount,
}

pub(crate) fn key_file_kind(file: &Map<String, Value>) -> Result<KeyFileKind, String> {
    match file.get("type").and_then(Value::as_str) {
        Some("service_account") => Ok(KeyFileKind::ServiceAccount),
        Some("external_account") => Ok(KeyFileKind::ExternalAccount),
        Some("authorized_user") => Err(
            "an authorized_user file (gcloud's user credentials) is not supported; \
             use a service account or workload identity federation"
                .into(),
        ),
        Some(other) => Err(format!(
            "a credential file of type {:?} is not supported",
            crate::redact::server_text(other, &[])
        )),
        None => Err("the file has no `type`".into()),
    }
}

/// Access tokens from Google's application default credentials, chosen
/// the way Google's libraries choose them:
///
/// 1. the file `GOOGLE_APPLICATION_CREDENTIALS` names: a service-account
///    key (`"type": "service_account"`, feature `jwt`) or a workload
///    identity federation configuration (`"type": "external_account"`,
///    [`ExternalAccount`](super::ExternalAccount));
/// 2. else the metadata server ([`MetadataAccessToken`](super::MetadataAccessToken),
///    at `GCE_METADATA_HOST` if set).
///
/// The choice is made once, by [`build`](ApplicationDefaultBuilder::build),
/// from the [`Env`] (the process's unless one is given); a file that is
/// named and cannot be used is an error then, not a reason to fall back.
/// The metadata server's absence shows on the first fetch, within a second
/// off Google Cloud, as a [`PlatformError`](crate::platform::PlatformError)
/// that lists what was passed over: `Google metadata server at
/// http://169.254.169.254/…: no connection (passed over: key file:
/// GOOGLE_APPLICATION_CREDENTIALS is not set)`.
///
/// Not read: gcloud's own user credentials
/// (`~/.config/gcloud/application_default_credentials.json`).
///
/// ```no_run
/// use tower_bearer::platform::google::{ApplicationDefault, GoogleCredential};
/// use tower_bearer::BearerAuthLayer;
///
/// # fn main() -> Result<(), tower_bearer::platform::SetupError> {
/// let source = ApplicationDefault::builder()
///     .scope("https://www.googleapis.com/auth/cloud-platform")
///     .build()?;
/// if source.chosen() == GoogleCredential::MetadataServer {
///     println!("on Google Cloud, or failing fast soon");
/// }
/// let layer = BearerAuthLayer::new(source);
/// # let _ = layer; Ok(()) }
/// ```
pub struct ApplicationDefault {
    chosen: Chosen,
    skipped: Vec<Skipped>,
}

enum Chosen {
    #[cfg(feature = "jwt")]
    ServiceAccount(GoogleServiceAccount),
    // Boxed: much larger than the others.
    External(Box<ExternalAccount>),
    Metadata(MetadataAccessToken),
}

impl ApplicationDefault {
    /// Starts configuring the chooser.
    pub fn builder() -> ApplicationDefaultBuilder {
        ApplicationDefaultBuilder {
            env: None,
            scopes: Vec::new(),
            http: HttpSettings::default(),
            timeout_set: false,
        }
    }

    /// The credential chosen.
    pub fn chosen(&self) -> GoogleCredential {
        match self.chosen {
            #[cfg(feature = "jwt")]
            Chosen::ServiceAccount(_) => GoogleCredential::ServiceAccountKey,
            Chosen::External(_) => GoogleCredential::ExternalAccount,
            Chosen::Metadata(_) => GoogleCredential::MetadataServer,
        }
    }

    /// The candidates passed over before it, and why.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }
}

impl TokenSource for ApplicationDefault {
    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        match &self.chosen {
            #[cfg(feature = "jwt")]
            Chosen::ServiceAccount(source) => source.fetch().await,
            Chosen::External(source) => source.fetch().await,
            Chosen::Metadata(source) => source.fetch().await,
        }
    }
}

impl fmt::Debug for ApplicationDefault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ApplicationDefault");
        match &self.chosen {
            #[cfg(feature = "jwt")]
            Chosen::ServiceAccount(source) => d.field("source", source),
            Chosen::External(source) => d.field("source", source),
            Chosen::Metadata(source) => d.field("source", source),
        };
        d.field("skipped", &self.skipped).finish()
    }
}

/// Builds an [`ApplicationDefault`]; see [`ApplicationDefault::builder`].
///
/// ```
/// use tower_bearer::platform::google::{ApplicationDefault, GoogleCredential};
/// use tower_bearer::platform::{Env, SetupError};
///
/// // GOOGLE_APPLICATION_CREDENTIALS names a file that is not there: an error, no fallback.
/// let env = Env::new().with("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json");
/// let err = ApplicationDefault::builder().env(env).build().unwrap_err();
/// assert!(matches!(err, SetupError::Source { source_name: "key file", .. }));
///
/// // Nothing set: the metadata server, at GCE_METADATA_HOST if set.
/// let env = Env::new().with("GCE_METADATA_HOST", "127.0.0.1:8080");
/// let adc = ApplicationDefault::builder().env(env).build().unwrap();
/// assert_eq!(adc.chosen(), GoogleCredential::MetadataServer);
/// ```
#[must_use]
#[derive(Debug)]
pub struct ApplicationDefaultBuilder {
    env: Option<Env>,
    scopes: Vec<String>,
    http: HttpSettings,
    /// Whether the timeout was set (the key-file sources keep their own
    /// defaults otherwise).
    timeout_set: bool,
}

impl ApplicationDefaultBuilder {
    chooser_setters!();
    /// Adds a scope the token must carry. Defaults to none: the metadata
    /// server's instance scopes, `cloud-platform` for an external account;
    /// a service-account key needs at least one.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// Chooses and builds the source; see [`ApplicationDefault`]. Fails
    /// when `GOOGLE_APPLICATION_CREDENTIALS` names a file that cannot be
    /// read or used (a service-account key without the `jwt` feature), and
    /// as the chosen source's builder does.
    pub fn build(self) -> Result<ApplicationDefault, SetupError> {
        let env = self.env.clone().unwrap_or_else(Env::from_process);
        let (decision, skipped) = choose(&env);
        let chosen = match decision {
            Decision::KeyFile(path) => self.key_file(&path)?,
            Decision::MetadataServer => {
                let mut builder: MetadataAccessTokenBuilder =
                    MetadataAccessToken::builder().env(env.clone());
                builder = self.scopes.iter().fold(builder, |b, s| b.scope(s.clone()));
                if let Some(client) = &self.http.client {
                    builder = builder.http_client(client.clone());
                }
                let builder = builder
                    .timeout(self.http.timeout)
                    .connect_timeout(self.http.connect_timeout);
                Chosen::Metadata(builder.build_after(&skipped)?)
            }
        };
        Ok(ApplicationDefault { chosen, skipped })
    }

    fn key_file(&self, path: &std::path::Path) -> Result<Chosen, SetupError> {
        let named =
            |why: String| SetupError::source(KEY_FILE, format!("{}: {why}", path.display()));
        let text = read_config(path).map_err(named)?;
        let file: Map<String, Value> = match serde_json::from_str(&text) {
            Ok(Value::Object(file)) => file,
            _ => return Err(named("not a JSON object".into())),
        };
        match key_file_kind(&file).map_err(named)? {
            KeyFileKind::ExternalAccount => {
                let mut builder = ExternalAccount::from_json(&text)?;
                builder = self.scopes.iter().fold(builder, |b, s| b.scope(s.clone()));
                if let Some(client) = &self.http.client {
                    builder = builder.http_client(client.clone());
                }
                if self.timeout_set {
                    builder = builder.timeout(self.http.timeout);
                }
                Ok(Chosen::External(Box::new(builder.build()?)))
            }
            #[cfg(feature = "jwt")]
            KeyFileKind::ServiceAccount => {
                let key = ServiceAccountKey::from_json(&text)?;
                let mut builder = GoogleServiceAccount::builder(key);
                builder = self.scopes.iter().fold(builder, |b, s| b.scope(s.clone()));
                if let Some(client) = &self.http.client {
                    builder = builder.http_client(client.clone());
                }
                if self.timeout_set {
                    builder = builder.timeout(self.http.timeout);
                }
                Ok(Chosen::ServiceAccount(builder.build()?))
            }
            #[cfg(not(feature = "jwt"))]
            KeyFileKind::ServiceAccount => Err(named(
                "a service_account key signs its requests: it needs the `jwt` feature".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_key_file_first_then_the_metadata_server() {
        let (decision, skipped) = choose(&Env::new());
        assert_eq!(decision, Decision::MetadataServer);
        assert_eq!(
            skipped,
            [Skipped::new(
                KEY_FILE,
                "GOOGLE_APPLICATION_CREDENTIALS is not set"
            )]
        );
        let env = Env::new()
            .with("GOOGLE_APPLICATION_CREDENTIALS", "/etc/gcp/key.json")
            .with("GCE_METADATA_HOST", "127.0.0.1:1");
        assert_eq!(
            choose(&env),
            (Decision::KeyFile("/etc/gcp/key.json".into()), Vec::new())
        );
        // Empty is unset, as in Google's libraries.
        let env = Env::new().with("GOOGLE_APPLICATION_CREDENTIALS", "");
        assert_eq!(choose(&env).0, Decision::MetadataServer);
    }

    #[test]
    fn key_files_by_type() {
        for (file, expected) in [
            (
                json!({"type": "service_account"}),
                Ok(KeyFileKind::ServiceAccount),
            ),
            (
                json!({"type": "external_account"}),
                Ok(KeyFileKind::ExternalAccount),
            ),
            (json!({"type": "authorized_user"}), Err("authorized_user")),
            (
                json!({"type": "impersonated_service_account"}),
                Err("impersonated_service_account"),
            ),
            (json!({"type": 7}), Err("no `type`")),
            (json!({}), Err("no `type`")),
        ] {
            let got = key_file_kind(file.as_object().unwrap());
            match expected {
                Ok(kind) => assert_eq!(got, Ok(kind), "{file}"),
                Err(why) => assert!(got.unwrap_err().contains(why), "{file}"),
            }
        }
    }
}
