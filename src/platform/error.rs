//! What goes wrong with a platform's identity: a source that cannot be set
//! up ([`SetupError`], before anything is sent) and an endpoint that did not
//! give a token ([`PlatformError`], the cause inside a `TokenError`).

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use crate::error::{ErrorKind, TokenError};
#[cfg(feature = "jwt")]
use crate::oauth2::KeyError;
use crate::oauth2::{BuildError, TransportError};

/// A source that a chooser passed over, and why it did not apply.
///
/// ```
/// use tower_bearer::platform::google::ApplicationDefault;
/// use tower_bearer::platform::Env;
///
/// # fn main() -> Result<(), tower_bearer::platform::SetupError> {
/// let adc = ApplicationDefault::builder()
///     .env(Env::new().with("GCE_METADATA_HOST", "127.0.0.1:8080"))
///     .build()?;
/// let skipped = &adc.skipped()[0];
/// assert_eq!(skipped.source(), "key file");
/// assert_eq!(skipped.reason(), "GOOGLE_APPLICATION_CREDENTIALS is not set");
/// assert_eq!(skipped.to_string(), "key file: GOOGLE_APPLICATION_CREDENTIALS is not set");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    source: &'static str,
    reason: String,
}

impl Skipped {
    pub(crate) fn new(source: &'static str, reason: impl Into<String>) -> Self {
        Self {
            source,
            reason: reason.into(),
        }
    }

    /// The source passed over.
    pub fn source(&self) -> &'static str {
        self.source
    }

    /// Why it did not apply.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source, self.reason)
    }
}

/// Writes `skipped` as `a: why; b: why`.
struct SkippedList<'a>(&'a [Skipped]);

impl fmt::Display for SkippedList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, skipped) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{skipped}")?;
        }
        Ok(())
    }
}

/// A platform source, or a chooser, that cannot be set up from what it was
/// given. Nothing was sent.
///
/// ```
/// use tower_bearer::platform::github::ActionsIdToken;
/// use tower_bearer::platform::{Env, SetupError};
///
/// // Outside a GitHub Actions job with `id-token: write`, the variables are missing.
/// let err = ActionsIdToken::builder().env(Env::new()).build().unwrap_err();
/// assert!(matches!(err, SetupError::Source { source_name: "GitHub Actions OIDC", .. }));
/// assert_eq!(
///     err.to_string(),
///     "GitHub Actions OIDC: ACTIONS_ID_TOKEN_REQUEST_URL is not set \
///      (the job needs `permissions: id-token: write`)"
/// );
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SetupError {
    /// The source lacks something it needs (a variable, a setting), or
    /// cannot use what it was given (a URL, a credential file).
    Source {
        /// The source.
        source_name: &'static str,
        /// What is missing or wrong.
        reason: String,
    },
    /// An OAuth2 endpoint or HTTP client could not be built from the
    /// settings (an insecure URL, no HTTP client without the `rustls`
    /// feature); the cause is the [`source`](std::error::Error::source).
    Build(BuildError),
    /// A service-account key file that cannot be used; the cause is the
    /// [`source`](std::error::Error::source).
    #[cfg(feature = "jwt")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
    Key(KeyError),
    /// None of a chooser's sources applies here; each is listed with the
    /// reason it was passed over.
    NothingApplies {
        /// The chooser.
        chooser: &'static str,
        /// Every source, in the chooser's order, and why it did not apply.
        skipped: Vec<Skipped>,
    },
}

impl SetupError {
    pub(crate) fn source(source_name: &'static str, reason: impl Into<String>) -> Self {
        SetupError::Source {
            source_name,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Source {
                source_name,
                reason,
            } => write!(f, "{source_name}: {reason}"),
            SetupError::Build(_) => f.write_str("cannot build the HTTP endpoint"),
            #[cfg(feature = "jwt")]
            SetupError::Key(_) => f.write_str("cannot use the service-account key"),
            SetupError::NothingApplies { chooser, skipped } => {
                write!(f, "{chooser}: no source applies ({})", SkippedList(skipped))
            }
        }
    }
}

impl StdError for SetupError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            SetupError::Build(err) => Some(err),
            #[cfg(feature = "jwt")]
            SetupError::Key(err) => Some(err),
            _ => None,
        }
    }
}

impl From<BuildError> for SetupError {
    fn from(err: BuildError) -> Self {
        SetupError::Build(err)
    }
}

#[cfg(feature = "jwt")]
impl From<KeyError> for SetupError {
    fn from(err: KeyError) -> Self {
        SetupError::Key(err)
    }
}

/// Why a platform endpoint (a metadata server, a managed-identity endpoint,
/// the GitHub Actions token service) gave no token: the cause inside the
/// [`TokenError`] of a platform source, reached with
/// [`TokenError::cause`].
///
/// Says which source was asked, at which URL (without its query), what went
/// wrong, and, for the source a chooser fell back to, which sources it
/// passed over and why. Never holds a token, a request token or the
/// `IDENTITY_HEADER`: what a server says is cut to 200 characters with
/// every secret sent redacted.
///
/// ```
/// use tower_bearer::platform::{Failure, PlatformError};
/// use tower_bearer::TokenError;
///
/// fn explain(err: &TokenError) -> String {
///     match err.cause().and_then(|c| c.downcast_ref::<PlatformError>()) {
///         Some(e) if matches!(e.failure(), Failure::Unreachable(_)) => {
///             format!("not on the platform of {}?", e.source_name())
///         }
///         Some(e) => format!("{} said no: {e}", e.source_name()),
///         None => err.to_string(),
///     }
/// }
/// # let _ = explain;
/// ```
#[derive(Debug)]
pub struct PlatformError {
    source_name: &'static str,
    url: String,
    failure: Failure,
    kind: ErrorKind,
    skipped: Arc<[Skipped]>,
}

/// What went wrong at a platform endpoint; see [`PlatformError`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Failure {
    /// No connection, or the connection broke before an answer: the
    /// connection was refused, there is no route, the connect timeout
    /// passed. Most often: not running on this platform. The HTTP client's
    /// error, its text made safe to print (URLs without their query), is
    /// the error's [`source`](std::error::Error::source).
    Unreachable(TransportError),
    /// Connected, but no whole answer within the source's timeout.
    TimedOut(Duration),
    /// The endpoint answered with an error status.
    Status {
        /// The status.
        status: StatusCode,
        /// The `error` code the answer carried, made safe to print.
        error: Option<String>,
        /// Its `error_description` (or the start of a body that is not
        /// JSON), made safe to print.
        description: Option<String>,
        /// The answer's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// The endpoint answered success with something that is not a token
    /// (not JSON, no token in it, larger than the cap).
    InvalidResponse {
        /// The status.
        status: StatusCode,
        /// What was wrong with it.
        reason: String,
    },
}

/// How a platform answers while it cannot serve a token yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusPolicy {
    /// Any 4xx but 408 and 429 is a mistake of the request.
    Plain,
    /// Azure IMDS: 404 while it updates or the identity is not assigned
    /// yet, 410 for up to 70 s while it updates; both worth retrying.
    Imds,
}

/// Whether an error status is worth trying again, and whether it says the
/// endpoint itself is overloaded (shared by every key behind it).
pub(crate) fn status_kind(status: StatusCode, policy: StatusPolicy) -> (ErrorKind, bool) {
    let overloaded = matches!(status.as_u16(), 429 | 503);
    let transient = status.is_server_error()
        || matches!(status.as_u16(), 408 | 429)
        || (policy == StatusPolicy::Imds && matches!(status.as_u16(), 404 | 410));
    let kind = if transient {
        ErrorKind::Transient
    } else {
        ErrorKind::Permanent
    };
    (kind, overloaded)
}

impl PlatformError {
    pub(crate) fn new(
        source_name: &'static str,
        url: String,
        failure: Failure,
        policy: StatusPolicy,
        skipped: Arc<[Skipped]>,
    ) -> Self {
        let kind = match &failure {
            Failure::Unreachable(_) | Failure::TimedOut(_) => ErrorKind::Transient,
            Failure::Status { status, .. } => status_kind(*status, policy).0,
            Failure::InvalidResponse { .. } => ErrorKind::Permanent,
        };
        Self {
            source_name,
            url,
            failure,
            kind,
            skipped,
        }
    }

    /// The source that was asked (`Google metadata server`, `Azure IMDS`, …).
    pub fn source_name(&self) -> &'static str {
        self.source_name
    }

    /// The URL asked, without its query.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What went wrong.
    pub fn failure(&self) -> &Failure {
        &self.failure
    }

    /// The sources a chooser passed over before falling back to this one,
    /// with their reasons; empty for a source used on its own.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Whether trying again later can help: a connection that failed, a
    /// timeout, a `5xx`, `408`, `429` (and Azure IMDS's `404` and `410`,
    /// which it answers while it updates or while a new identity is being
    /// assigned) are transient; any other answer is permanent.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// `true` for `429` and `503`: the endpoint asks every caller to slow down.
    pub fn is_endpoint_overload(&self) -> bool {
        match &self.failure {
            Failure::Status { status, .. } => matches!(status.as_u16(), 429 | 503),
            _ => false,
        }
    }

    /// The answer's `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match &self.failure {
            Failure::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}: ", self.source_name, self.url)?;
        match &self.failure {
            // The transport error is the source, not repeated here.
            Failure::Unreachable(_) => f.write_str("no connection")?,
            Failure::TimedOut(after) => write!(f, "no answer within {after:?}")?,
            Failure::Status {
                status,
                error,
                description,
                ..
            } => {
                write!(f, "answered {status}")?;
                for text in [error, description].into_iter().flatten() {
                    write!(f, ": {text}")?;
                }
            }
            Failure::InvalidResponse { status, reason } => {
                write!(f, "answered {status} with {reason}")?;
            }
        }
        if !self.skipped.is_empty() {
            write!(f, " (passed over: {})", SkippedList(&self.skipped))?;
        }
        Ok(())
    }
}

impl StdError for PlatformError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.failure {
            Failure::Unreachable(cause) => Some(cause),
            _ => None,
        }
    }
}

impl From<PlatformError> for TokenError {
    fn from(err: PlatformError) -> Self {
        let retry_after = err.retry_after();
        let overloaded = err.is_endpoint_overload();
        TokenError::from_cause(err.kind(), err, retry_after).endpoint_overloaded_if(overloaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_statuses_are_worth_trying_again() {
        use ErrorKind::{Permanent, Transient};
        use StatusPolicy::{Imds, Plain};
        for (status, policy, kind, overloaded) in [
            (400, Plain, Permanent, false),
            (400, Imds, Permanent, false),
            (401, Imds, Permanent, false),
            (403, Plain, Permanent, false),
            (404, Plain, Permanent, false),
            (404, Imds, Transient, false),
            (408, Plain, Transient, false),
            (410, Plain, Permanent, false),
            (410, Imds, Transient, false),
            (429, Plain, Transient, true),
            (429, Imds, Transient, true),
            (500, Imds, Transient, false),
            (502, Plain, Transient, false),
            (503, Plain, Transient, true),
            (504, Imds, Transient, false),
        ] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(
                status_kind(status, policy),
                (kind, overloaded),
                "{status} {policy:?}"
            );
        }
    }

    #[test]
    fn the_message_names_the_source_and_what_the_chooser_passed_over() {
        let err = PlatformError::new(
            "Azure IMDS",
            "http://169.254.169.254/metadata/identity/oauth2/token?[redacted]".into(),
            Failure::Status {
                status: StatusCode::TOO_MANY_REQUESTS,
                error: None,
                description: Some("slow down".into()),
                retry_after: Some(Duration::from_secs(2)),
            },
            StatusPolicy::Imds,
            Arc::from(vec![
                Skipped::new("environment", "AZURE_CLIENT_SECRET is not set"),
                Skipped::new("workload identity", "AZURE_FEDERATED_TOKEN_FILE is not set"),
            ]),
        );
        assert_eq!(
            err.to_string(),
            "Azure IMDS at http://169.254.169.254/metadata/identity/oauth2/token?[redacted]: \
             answered 429 Too Many Requests: slow down (passed over: environment: \
             AZURE_CLIENT_SECRET is not set; workload identity: AZURE_FEDERATED_TOKEN_FILE \
             is not set)"
        );
        let token = TokenError::from(err);
        assert!(token.is_transient() && token.is_endpoint_overload());
        assert_eq!(token.retry_after(), Some(Duration::from_secs(2)));
    }
}
