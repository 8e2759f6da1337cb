//! A Google service-account key file: who the account is, its private key,
//! and where it obtains tokens.

use std::fmt;
use std::path::Path;

use serde_json::{Map, Value};

use super::key_error::KeyError;
use super::signing_algorithm::SigningAlgorithm;
use super::signing_key::SigningKey;

/// Google's token endpoint, for key files that do not name one.
const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// The largest key file read: real ones are about 2.3 KiB.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// A Google service-account key file (the JSON downloaded from the Cloud
/// console: `type: "service_account"`, `client_email`, `private_key_id`,
/// `private_key`, `token_uri`, …), ready to sign with RS256 under the
/// `private_key_id` as `kid`.
///
/// `Debug` shows the account and token URI, never the key.
///
/// ```
/// use tower_bearer::oauth2::{KeyError, ServiceAccountKey};
///
/// let pem = std::fs::read_to_string("tests/fixtures/keys/rsa.pkcs8.pem").unwrap();
/// let file = serde_json::json!({
///     "type": "service_account",
///     "project_id": "demo",
///     "private_key_id": "0123abcd",
///     "private_key": pem,
///     "client_email": "reporter@demo.iam.gserviceaccount.com",
///     "token_uri": "https://oauth2.googleapis.com/token",
/// });
/// let key = ServiceAccountKey::from_json(&file.to_string()).unwrap();
/// assert_eq!(key.client_email(), "reporter@demo.iam.gserviceaccount.com");
/// assert_eq!(key.signing_key().kid(), Some("0123abcd"));
/// assert!(!format!("{key:?}").contains("PRIVATE"));
///
/// // Other Google credential files are told apart.
/// let err = ServiceAccountKey::from_json(r#"{"type":"authorized_user"}"#).unwrap_err();
/// assert!(matches!(err, KeyError::KeyFile(_)));
/// ```
#[derive(Clone)]
pub struct ServiceAccountKey {
    client_email: String,
    token_uri: String,
    key: SigningKey,
}

impl ServiceAccountKey {
    /// Reads a key file (at most 64 KiB).
    ///
    /// Fails with [`KeyError::Io`] if it cannot be read, and as
    /// [`from_json`](Self::from_json) does.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        use std::io::Read as _;
        let path = path.as_ref();
        let io_error = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let mut text = String::new();
        std::fs::File::open(path)
            .map_err(io_error)?
            .take(MAX_KEY_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(io_error)?;
        if text.len() as u64 > MAX_KEY_FILE_BYTES {
            return Err(KeyError::KeyFile("larger than 64 KiB".into()));
        }
        Self::from_json(&text)
    }

    /// Reads a key file's contents.
    ///
    /// Fails with [`KeyError::KeyFile`] for JSON that is not a service-account
    /// key (another kind of Google credentials, a member missing), and with
    /// the [`SigningKey`] errors for a key that cannot sign RS256.
    pub fn from_json(text: &str) -> Result<Self, KeyError> {
        // serde_json's messages quote the input, which holds a private key:
        // only the position is kept.
        let file: Map<String, Value> = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(KeyError::KeyFile("not a JSON object".into())),
            Err(e) => {
                return Err(KeyError::KeyFile(format!(
                    "not JSON (line {}, column {})",
                    e.line(),
                    e.column()
                )))
            }
        };
        match file.get("type").and_then(Value::as_str) {
            Some("service_account") | None => {}
            Some(
                other @ ("authorized_user" | "external_account" | "impersonated_service_account"),
            ) => {
                return Err(KeyError::KeyFile(format!(
                    "`{other}` credentials, not a service-account key"
                )))
            }
            Some(_) => return Err(KeyError::KeyFile("`type` is not `service_account`".into())),
        }
        let client_email = string(&file, "client_email")?
            .ok_or_else(|| KeyError::KeyFile("no `client_email`".into()))?;
        let private_key = string(&file, "private_key")?
            .ok_or_else(|| KeyError::KeyFile("no `private_key`".into()))?;
        let token_uri = string(&file, "token_uri")?.unwrap_or(GOOGLE_TOKEN_URI);
        let mut key = SigningKey::from_pem(SigningAlgorithm::Rs256, private_key)?;
        if let Some(kid) = string(&file, "private_key_id")? {
            key = key.with_kid(kid);
        }
        Ok(Self {
            client_email: client_email.to_owned(),
            token_uri: token_uri.to_owned(),
            key,
        })
    }

    /// The account's email: the assertions' issuer.
    pub fn client_email(&self) -> &str {
        &self.client_email
    }

    /// Where the account obtains tokens (`token_uri`; Google's token
    /// endpoint if the file names none): the assertions' audience.
    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// The RS256 key, with the `private_key_id` as `kid`.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }
}

/// A string member, if present; another type is an error.
fn string<'a>(file: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, KeyError> {
    match file.get(name) {
        None => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(_) => Err(KeyError::KeyFile(format!("`{name}` is not a string"))),
    }
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("key", &self.key)
            .finish()
    }
}
