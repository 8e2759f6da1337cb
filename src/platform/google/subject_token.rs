//! Where an external account's subject token comes from (AIP-4117's
//! `credential_source`): a file or a local URL, in plain text or JSON,
//! read again for every exchange.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Uri};
use http_body_util::Full;
use serde_json::{Map, Value};

use crate::error::{ErrorKind, TokenError};
use crate::oauth2::{SecurityToken, TokenType};
use crate::platform::error::SetupError;
use crate::platform::error::StatusPolicy;
use crate::platform::settings::HttpSettings;
use crate::platform::transport::Endpoint;
use crate::secret::Secret;
use crate::source::TokenSource;
use crate::token::AccessToken;

/// The name in errors and logs of the external account these subject
/// tokens serve (here, so that this file need not import that one).
pub(crate) const EXTERNAL_ACCOUNT: &str = "Google external account";

/// The name in errors and logs of a URL-sourced subject token.
const URL_SOURCE: &str = "external account credential_source";

/// The largest subject-token file read, as for any token file.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// What an external account presents to Google's STS.
#[derive(Clone)]
pub(crate) enum SubjectToken {
    /// A text file: the crate's token file, read again for every exchange.
    TextFile(PathBuf),
    /// A JSON file, the token under `field`.
    JsonFile { path: PathBuf, field: String },
    /// `GET url` with `headers`; the body, or its `field` if JSON.
    Url {
        uri: Uri,
        headers: Vec<(HeaderName, HeaderValue)>,
        field: Option<String>,
        endpoint: Endpoint,
    },
}

impl SubjectToken {
    /// Reads the `credential_source` object of an external account file.
    pub(crate) fn from_config(
        source: &Map<String, Value>,
        http: &HttpSettings,
    ) -> Result<Self, SetupError> {
        let invalid = |reason: String| SetupError::source(EXTERNAL_ACCOUNT, reason);
        if source.contains_key("environment_id") {
            return Err(invalid(
                "an AWS credential_source (environment_id) is not supported".into(),
            ));
        }
        if source.contains_key("executable") {
            return Err(invalid(
                "an executable credential_source is not supported".into(),
            ));
        }
        let format = source.get("format").and_then(Value::as_object);
        let field = match format.and_then(|f| f.get("type")).and_then(Value::as_str) {
            None | Some("text") => None,
            Some("json") => Some(
                format
                    .and_then(|f| f.get("subject_token_field_name"))
                    .and_then(Value::as_str)
                    .filter(|name| !name.is_empty())
                    .ok_or_else(|| {
                        invalid("a json credential_source needs subject_token_field_name".into())
                    })?
                    .to_owned(),
            ),
            Some(other) => {
                return Err(invalid(format!(
                    "credential_source format {other:?} is neither text nor json"
                )))
            }
        };
        // AIP-4117: a file takes precedence over a URL.
        if let Some(file) = source.get("file").and_then(Value::as_str) {
            let path = PathBuf::from(file);
            return Ok(match field {
                None => SubjectToken::TextFile(path),
                Some(field) => SubjectToken::JsonFile { path, field },
            });
        }
        let Some(url) = source.get("url").and_then(Value::as_str) else {
            return Err(invalid("credential_source has neither file nor url".into()));
        };
        let uri: Uri = url
            .parse()
            .ok()
            .filter(|uri: &Uri| matches!(uri.scheme_str(), Some("http" | "https")))
            .ok_or_else(|| invalid("credential_source url is not an http(s) URL".into()))?;
        let mut headers = Vec::new();
        if let Some(configured) = source.get("headers").and_then(Value::as_object) {
            for (name, value) in configured {
                let header = (
                    HeaderName::try_from(name.as_str()).ok(),
                    value.as_str().and_then(|v| HeaderValue::try_from(v).ok()),
                );
                let (Some(name), Some(mut value)) = header else {
                    return Err(invalid(format!(
                        "credential_source header {name:?} cannot be sent"
                    )));
                };
                // Its value may be a credential; keep it out of logs.
                value.set_sensitive(true);
                headers.push((name, value));
            }
        }
        // A local URL (Azure's IMDS, a sidecar): never through a proxy.
        let endpoint = Endpoint::new(
            URL_SOURCE,
            http.local_client()?,
            http.timeout,
            StatusPolicy::Plain,
        );
        Ok(SubjectToken::Url {
            uri,
            headers,
            field,
            endpoint,
        })
    }

    /// As the token the exchange presents, with its type.
    pub(crate) fn into_security_token(self, token_type: TokenType) -> SecurityToken {
        match self {
            SubjectToken::TextFile(path) => SecurityToken::from_file(path, token_type),
            other => SecurityToken::from_source(other, token_type),
        }
    }

    async fn read(&self) -> Result<Secret, TokenError> {
        match self {
            SubjectToken::TextFile(path) => {
                SecurityToken::from_file(path.clone(), TokenType::JWT)
                    .value()
                    .await
            }
            SubjectToken::JsonFile { path, field } => {
                let owned = path.clone();
                let bytes = tokio::task::spawn_blocking(move || read_capped(&owned))
                    .await
                    .map_err(|join| {
                        TokenError::with_source(ErrorKind::Transient, "subject token file", join)
                    })?
                    .map_err(|io| {
                        let what = format!("cannot read subject token file {}", path.display());
                        TokenError::with_source(ErrorKind::Transient, what, io)
                    })?;
                field_of(&bytes, field).map_err(|reason| {
                    TokenError::permanent(format!(
                        "subject token file {}: {reason}",
                        path.display()
                    ))
                })
            }
            SubjectToken::Url {
                uri,
                headers,
                field,
                endpoint,
            } => {
                let mut request = Request::new(Full::<Bytes>::default());
                *request.uri_mut() = uri.clone();
                for (name, value) in headers {
                    request.headers_mut().insert(name, value.clone());
                }
                let sent: Vec<&str> = headers
                    .iter()
                    .filter_map(|(_, v)| v.to_str().ok())
                    .collect();
                let answer = endpoint.send(request, &sent).await?;
                match field {
                    None => Ok(Secret::new(endpoint.text_token(&answer)?)),
                    Some(field) => field_of(&answer.body, field)
                        .map_err(|reason| endpoint.invalid(&answer, reason).into()),
                }
            }
        }
    }
}

impl TokenSource for SubjectToken {
    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        Ok(AccessToken::new(self.read().await?.expose()))
    }
}

/// A file's bytes, at most [`MAX_FILE_BYTES`] of them.
fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The non-empty string under `field` of a JSON object.
fn field_of(body: &[u8], field: &str) -> Result<Secret, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| "the content is not JSON".to_owned())?;
    match value.get(field) {
        Some(Value::String(token)) if !token.trim().is_empty() => Ok(Secret::new(token.trim())),
        _ => Err(format!("no string field {field:?}")),
    }
}

impl fmt::Debug for SubjectToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubjectToken::TextFile(path) => f.debug_tuple("File").field(path).finish(),
            SubjectToken::JsonFile { path, field } => f
                .debug_struct("JsonFile")
                .field("path", path)
                .field("field", field)
                .finish(),
            SubjectToken::Url {
                uri,
                headers,
                field,
                ..
            } => {
                // Header names only: their values may be credentials.
                let names: BTreeMap<&str, &str> = headers
                    .iter()
                    .map(|(name, _)| (name.as_str(), "[redacted]"))
                    .collect();
                f.debug_struct("Url")
                    .field("url", &crate::redact::url(&uri.to_string()))
                    .field("headers", &names)
                    .field("field", field)
                    .finish()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn credential_sources_of_aip_4117() {
        let http = HttpSettings {
            client: Some(crate::oauth2::HttpClient::new(tower::service_fn(
                |_req: Request<Full<Bytes>>| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::default()))
                },
            ))),
            ..HttpSettings::default()
        };
        let read = |source: Value| {
            SubjectToken::from_config(source.as_object().unwrap(), &http).map(|s| format!("{s:?}"))
        };
        let ok = [
            (json!({"file": "/t"}), r#"File("/t")"#),
            (
                json!({"file": "/t", "format": {"type": "text"}}),
                r#"File("/t")"#,
            ),
            (
                json!({"file": "/t", "url": "http://x/", "format": {"type": "json", "subject_token_field_name": "id_token"}}),
                r#"JsonFile { path: "/t", field: "id_token" }"#,
            ),
            (
                json!({"url": "http://169.254.169.254/metadata/identity/oauth2/token?resource=r", "headers": {"Metadata": "True"}, "format": {"type": "json", "subject_token_field_name": "access_token"}}),
                r#"Url { url: "http://169.254.169.254/metadata/identity/oauth2/token?[redacted]", headers: {"metadata": "[redacted]"}, field: Some("access_token") }"#,
            ),
        ];
        for (source, debug) in ok {
            assert_eq!(read(source.clone()).unwrap(), debug, "{source}");
        }
        for (source, why) in [
            (json!({"environment_id": "aws1"}), "AWS"),
            (json!({"executable": {"command": "/bin/x"}}), "executable"),
            (json!({}), "neither file nor url"),
            (
                json!({"file": "/t", "format": {"type": "json"}}),
                "subject_token_field_name",
            ),
            (
                json!({"file": "/t", "format": {"type": "xml"}}),
                "neither text nor json",
            ),
            (json!({"url": "ftp://x/"}), "not an http(s) URL"),
            (
                json!({"url": "http://x/", "headers": {"a b": "c"}}),
                "cannot be sent",
            ),
        ] {
            let err = read(source.clone()).unwrap_err().to_string();
            assert!(err.contains(why), "{source}: {err}");
        }
    }

    #[test]
    fn json_fields_hold_the_token() {
        assert_eq!(
            field_of(br#"{"id_token":" eyJ.a.b\n"}"#, "id_token")
                .unwrap()
                .expose(),
            "eyJ.a.b"
        );
        assert!(field_of(br#"{"id_token":""}"#, "id_token").is_err());
        assert!(field_of(br#"{"other":"x"}"#, "id_token").is_err());
        assert!(field_of(b"eyJ.a.b", "id_token").is_err());
    }
}
