//! How the platform sources talk to their endpoints: which HTTP client
//! (never a proxy for the metadata servers), how long they wait, how much
//! they read, and how an answer becomes a token or a [`PlatformError`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Map, Value};

use super::error::{Failure, PlatformError, Skipped, StatusPolicy};
use super::lifetime;
use crate::error::TokenError;
use crate::oauth2::{HttpClient, TransportError};
use crate::redact;
use crate::token::AccessToken;

/// The largest answer read: tokens are a few KiB.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// One platform endpoint as a source asks it: its name for errors and
/// logs, the client and timeout, how its statuses read, and what a chooser
/// passed over before choosing it.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    name: &'static str,
    http: HttpClient,
    timeout: Duration,
    policy: StatusPolicy,
    skipped: Arc<[Skipped]>,
}

/// A success answer, read whole.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
    url: String,
}

impl Endpoint {
    pub(crate) fn new(
        name: &'static str,
        http: HttpClient,
        timeout: Duration,
        policy: StatusPolicy,
    ) -> Self {
        Self {
            name,
            http,
            timeout,
            policy,
            skipped: Arc::from(Vec::new()),
        }
    }

    /// Names, in every error, what a chooser passed over before this.
    pub(crate) fn passed_over(mut self, skipped: &[Skipped]) -> Self {
        self.skipped = Arc::from(skipped.to_vec());
        self
    }

    /// Sends `request` and reads the answer within the timeout. An error
    /// status is a [`Failure::Status`], its JSON `error` and
    /// `error_description` (or the start of its body) kept with the
    /// `sent` secrets and secret-bearing fields redacted.
    pub(crate) async fn send(
        &self,
        request: Request<Full<Bytes>>,
        sent: &[&str],
    ) -> Result<Answer, PlatformError> {
        let url = redact::url(&request.uri().to_string());
        tracing::debug!(source = self.name, url = %url, "platform token request");
        let exchange = exchange(&self.http, request);
        let (parts, body) = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(failure)) => return Err(self.error(url, failure)),
            Err(_) => return Err(self.error(url, Failure::TimedOut(self.timeout))),
        };
        tracing::debug!(source = self.name, url = %url, status = parts.status.as_u16(), "platform answer");
        if !parts.status.is_success() {
            let retry_after = crate::oauth2::retry_after(&parts.headers, SystemTime::now());
            let (error, description) = error_fields(&body, sent);
            let failure = Failure::Status {
                status: parts.status,
                error,
                description,
                retry_after,
            };
            return Err(self.error(url, failure));
        }
        Ok(Answer {
            status: parts.status,
            body,
            url,
        })
    }

    /// A failure of this endpoint at `url` (already redacted).
    pub(crate) fn error(&self, url: String, failure: Failure) -> PlatformError {
        PlatformError::new(self.name, url, failure, self.policy, self.skipped.clone())
    }

    /// A success answer that does not hold what it should.
    pub(crate) fn invalid(&self, answer: &Answer, reason: impl Into<String>) -> PlatformError {
        let failure = Failure::InvalidResponse {
            status: answer.status,
            reason: reason.into(),
        };
        self.error(answer.url.clone(), failure)
    }

    /// The answer's JSON object.
    pub(crate) fn json(&self, answer: &Answer) -> Result<Map<String, Value>, TokenError> {
        match serde_json::from_slice(&answer.body) {
            Ok(Value::Object(fields)) => Ok(fields),
            _ => Err(self
                .invalid(answer, "a body that is not a JSON object")
                .into()),
        }
    }

    /// The bearer token of a JSON answer (`access_token`, a `token_type` of
    /// `Bearer` if any) with its lifetime: `expires_in` seconds, else the
    /// Unix time `expires_on` (App Service sends only that), both numbers
    /// or strings of digits; unknown if neither.
    pub(crate) fn bearer_token(&self, answer: &Answer) -> Result<AccessToken, TokenError> {
        let fields = self.json(answer)?;
        let token = match fields.get("access_token") {
            Some(Value::String(token)) if !token.is_empty() => AccessToken::new(token.as_str()),
            _ => return Err(self.invalid(answer, "no `access_token`").into()),
        };
        if let Some(kind) = fields.get("token_type").and_then(Value::as_str) {
            if !kind.eq_ignore_ascii_case("bearer") {
                let kind = redact::server_text(kind, &[]);
                return Err(self
                    .invalid(answer, format!("a token of type {kind}"))
                    .into());
            }
        }
        if let Some(lifetime) = fields.get("expires_in").and_then(lifetime::seconds) {
            return Ok(token.with_expires_in(Duration::from_secs(lifetime)));
        }
        Ok(match fields.get("expires_on").and_then(lifetime::seconds) {
            Some(at) => lifetime::expiring_at(token, at, SystemTime::now()),
            None => token,
        })
    }

    /// The answer as one token in plain text (a JWT), trimmed.
    pub(crate) fn text_token<'a>(&self, answer: &'a Answer) -> Result<&'a str, TokenError> {
        let token = std::str::from_utf8(&answer.body)
            .map(str::trim)
            .unwrap_or_default();
        if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(self.invalid(answer, "a body that is not one token").into());
        }
        Ok(token)
    }
}

/// Sends `request` and reads the whole answer, at most
/// [`MAX_ANSWER_BYTES`] of it.
async fn exchange(
    http: &HttpClient,
    request: Request<Full<Bytes>>,
) -> Result<(http::response::Parts, Bytes), Failure> {
    let response = match http.send(request).await {
        Ok(response) => response,
        Err(err) => return Err(Failure::Unreachable(TransportError::new(err))),
    };
    let (parts, mut body) = response.into_parts();
    let mut collected = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(err) => return Err(Failure::Unreachable(TransportError::new(err))),
        };
        if let Ok(data) = frame.into_data() {
            if collected.len() + data.len() > MAX_ANSWER_BYTES {
                return Err(Failure::InvalidResponse {
                    status: parts.status,
                    reason: format!("an answer larger than {MAX_ANSWER_BYTES} bytes"),
                });
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok((parts, Bytes::from(collected)))
}

/// The `error` and `error_description` of an error answer in JSON (IMDS,
/// Entra, Google's APIs nest theirs under `error`), or the start of a body
/// that is not JSON, made safe to print.
fn error_fields(body: &[u8], sent: &[&str]) -> (Option<String>, Option<String>) {
    let safe = |text: &str| redact::server_text(text, sent);
    let fields = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => fields,
        _ if body.trim_ascii().is_empty() => return (None, None),
        _ => return (None, Some(redact::excerpt(body.trim_ascii(), sent))),
    };
    let text = |value: Option<&Value>| value.and_then(Value::as_str).map(safe);
    match fields.get("error") {
        // Google's APIs: {"error": {"code": 403, "message": "…", "status": "PERMISSION_DENIED"}}
        Some(Value::Object(inner)) => (text(inner.get("status")), text(inner.get("message"))),
        error => (
            text(error),
            text(fields.get("error_description").or(fields.get("message"))),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_fields_of_the_platforms_shapes() {
        let table: [(&[u8], Option<&str>, Option<&str>); 6] = [
            (
                br#"{"error":"invalid_request","error_description":"Identity not found"}"#,
                Some("invalid_request"),
                Some("Identity not found"),
            ),
            (
                br#"{"error":{"code":403,"message":"Permission denied","status":"PERMISSION_DENIED"}}"#,
                Some("PERMISSION_DENIED"),
                Some("Permission denied"),
            ),
            (
                b"Missing required header: Metadata-Flavor\n",
                None,
                Some("Missing required header: Metadata-Flavor"),
            ),
            (b"  ", None, None),
            (
                br#"{"message":"Unable to get ACTIONS_ID_TOKEN_REQUEST_URL"}"#,
                None,
                Some("Unable to get ACTIONS_ID_TOKEN_REQUEST_URL"),
            ),
            (
                br#"{"error":"bad","error_description":"echo s3cr3t access_token=abc"}"#,
                Some("bad"),
                Some("echo [redacted] access_token=[redacted]"),
            ),
        ];
        for (body, error, description) in table {
            let (e, d) = error_fields(body, &["s3cr3t"]);
            assert_eq!(
                (e.as_deref(), d.as_deref()),
                (error, description),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
