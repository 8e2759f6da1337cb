//! What a client keeps while the user is at the authorization server: the
//! `state`, the PKCE verifier, the redirect URI, the expected issuer and the
//! DPoP key the code is bound to.
//! Saved in a session, it lets any process finish the flow.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::csrf_state::CsrfState;
use super::issuer_check::ExpectedIssuer;
use super::pkce::PkceVerifier;
use crate::redact::{self, Redacted};

/// An authorization in progress, as a web app keeps it in the user's session
/// between the redirect to the authorization server and the callback: the
/// `state` and PKCE verifier sent, the `redirect_uri` (the exchange must
/// repeat it), and the issuer the user was sent to (RFC 9207).
///
/// [`AuthorizationCode::start`](crate::oauth2::AuthorizationCode::start) makes one
/// (see [`AuthorizationRequest::pending`](crate::oauth2::AuthorizationRequest::pending));
/// [`AuthorizationCode::finish`](crate::oauth2::AuthorizationCode::finish) finishes it
/// in whichever process the callback lands, after a restart or on another
/// instance. With the `serde` feature it is `Serialize` and `Deserialize`;
/// the fields can also be saved one by one and put back with
/// [`new`](Self::new) and the `with_*` methods.
///
/// It holds secrets (the `state` and the verifier): keep it where sessions
/// keep secrets (server-side, or in an encrypted cookie). `Debug` shows
/// neither.
///
/// It is exchanged once: a second exchange from it or from a clone, of the
/// same callback or another, is refused before anything is sent
/// ([`ExchangeError::AlreadyExchanged`](crate::oauth2::ExchangeError::AlreadyExchanged)),
/// also after a first exchange that failed, since its code may have reached
/// the server, which must then revoke what it issued for it (RFC 6749
/// §4.1.2). A callback refused by the checks (a forged `state`, another
/// issuer) does not use it up. A copy read back from a session store is a
/// new value that knows nothing of this: take it out of the session when the
/// callback arrives, so that a replayed callback finds none.
///
/// ```
/// use tower_bearer::oauth2::{AuthorizationCode, CsrfState, PendingAuthorization, PkceVerifier, TokenEndpoint};
///
/// let endpoint = TokenEndpoint::builder("https://idp.example/token").client_id("app").build().unwrap();
/// let flow = AuthorizationCode::new("https://idp.example/authorize", endpoint)
///     .unwrap()
///     .redirect_uri("https://app.example/callback")
///     .require_issuer("https://idp.example");
/// let request = flow.start();
/// let pending = request.pending().clone();
/// assert_eq!(pending.issuer(), Some("https://idp.example"));
/// assert!(pending.issuer_required());
/// assert!(!format!("{pending:?}").contains(pending.state().secret().expose()));
///
/// // Without serde: save the parts, build it again later.
/// let (state, verifier) = (pending.state().secret().expose().to_owned(), pending.verifier().unwrap().secret().expose().to_owned());
/// let restored = PendingAuthorization::new(CsrfState::new(state))
///     .with_verifier(PkceVerifier::new(verifier).unwrap())
///     .with_redirect_uri("https://app.example/callback")
///     .with_required_issuer("https://idp.example");
/// assert_eq!(restored, pending);
/// ```
///
/// With the `serde` feature, as JSON:
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use tower_bearer::oauth2::{CsrfState, PendingAuthorization, PkceVerifier};
///
/// let pending = PendingAuthorization::new(CsrfState::new("af0ifjsldkj"))
///     .with_verifier(PkceVerifier::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap())
///     .with_redirect_uri("https://app.example/callback")
///     .with_required_issuer("https://idp.example");
/// let json = serde_json::to_string(&pending).unwrap();
/// assert_eq!(
///     json,
///     r#"{"state":"af0ifjsldkj","code_verifier":"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk","redirect_uri":"https://app.example/callback","issuer":"https://idp.example","issuer_required":true}"#
/// );
/// let restored: PendingAuthorization = serde_json::from_str(&json).unwrap();
/// assert_eq!(restored, pending);
///
/// // What cannot have come from `start` is refused, without echoing it.
/// let err = serde_json::from_str::<PendingAuthorization>(r#"{"state":"s","code_verifier":"short"}"#).unwrap_err();
/// assert!(err.to_string().contains("RFC 7636") && !err.to_string().contains("short"));
/// # }
/// ```
#[derive(Clone)]
pub struct PendingAuthorization {
    state: CsrfState,
    verifier: Option<PkceVerifier>,
    redirect_uri: Option<String>,
    issuer: Option<ExpectedIssuer>,
    /// The thumbprint of the DPoP key the code is bound to (`dpop_jkt`).
    dpop_jkt: Option<String>,
    /// Shared by clones: a clone is the same authorization, whose code may
    /// be sent once.
    exchanged: Arc<AtomicBool>,
}

/// Equal when they describe the same authorization; whether it was
/// exchanged is not part of that.
impl PartialEq for PendingAuthorization {
    fn eq(&self, other: &Self) -> bool {
        self.state == other.state
            && self.verifier == other.verifier
            && self.redirect_uri == other.redirect_uri
            && self.issuer == other.issuer
            && self.dpop_jkt == other.dpop_jkt
    }
}

impl Eq for PendingAuthorization {}

impl PendingAuthorization {
    /// An authorization that sent `state`, without PKCE, redirect URI or
    /// expected issuer; add those with the `with_*` methods.
    pub fn new(state: CsrfState) -> Self {
        Self {
            state,
            verifier: None,
            redirect_uri: None,
            issuer: None,
            dpop_jkt: None,
            exchanged: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The PKCE verifier whose challenge was sent.
    pub fn with_verifier(mut self, verifier: PkceVerifier) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// The `redirect_uri` sent, which the code exchange repeats.
    pub fn with_redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uri = Some(uri.into());
        self
    }

    /// The issuer the user was sent to: a callback whose `iss` names another
    /// is refused ([`ExchangeError::IssuerMismatch`](crate::oauth2::ExchangeError::IssuerMismatch)).
    pub fn with_expected_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(ExpectedIssuer {
            issuer: issuer.into(),
            required: false,
        });
        self
    }

    /// Like [`with_expected_issuer`](Self::with_expected_issuer), for an
    /// issuer that always sends `iss`: a callback without one is refused too
    /// ([`ExchangeError::MissingIssuer`](crate::oauth2::ExchangeError::MissingIssuer)).
    pub fn with_required_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(ExpectedIssuer {
            issuer: issuer.into(),
            required: true,
        });
        self
    }

    /// The thumbprint of the DPoP key the authorization request named
    /// (`dpop_jkt`, RFC 9449 §10): the server binds the code to that key, so
    /// only a flow whose token endpoint holds it may exchange the code
    /// ([`ExchangeError::DpopKeyMismatch`](crate::oauth2::ExchangeError::DpopKeyMismatch)
    /// otherwise).
    pub fn with_dpop_jkt(mut self, thumbprint: impl Into<String>) -> Self {
        self.dpop_jkt = Some(thumbprint.into());
        self
    }

    /// The `state` sent.
    pub fn state(&self) -> &CsrfState {
        &self.state
    }

    /// The PKCE verifier, unless PKCE was off.
    pub fn verifier(&self) -> Option<&PkceVerifier> {
        self.verifier.as_ref()
    }

    /// The `redirect_uri` sent, if any.
    pub fn redirect_uri(&self) -> Option<&str> {
        self.redirect_uri.as_deref()
    }

    /// The issuer the user was sent to, if known: the flow to finish with
    /// is that issuer's.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_ref().map(|i| i.issuer.as_str())
    }

    /// Whether a callback without `iss` is refused.
    pub fn issuer_required(&self) -> bool {
        self.issuer.as_ref().is_some_and(|i| i.required)
    }

    /// The thumbprint of the DPoP key the code is bound to, if the
    /// authorization request named one.
    pub fn dpop_jkt(&self) -> Option<&str> {
        self.dpop_jkt.as_deref()
    }

    pub(crate) fn with_issuer(mut self, issuer: Option<ExpectedIssuer>) -> Self {
        self.issuer = issuer;
        self
    }

    pub(crate) fn expected_issuer(&self) -> Option<&ExpectedIssuer> {
        self.issuer.as_ref()
    }

    /// Marks this authorization (and its clones) exchanged; `false` if it
    /// already was, and its code must not be sent again.
    pub(crate) fn begin_exchange(&self) -> bool {
        !self.exchanged.swap(true, Ordering::AcqRel)
    }
}

impl fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("state", &Redacted)
            .field("verifier", &self.verifier.as_ref().map(|_| Redacted))
            .field(
                "redirect_uri",
                &self.redirect_uri.as_deref().map(redact::url),
            )
            .field("issuer", &self.issuer())
            .field("issuer_required", &self.issuer_required())
            .field("dpop_jkt", &self.dpop_jkt)
            .finish()
    }
}

#[cfg(feature = "serde")]
mod wire {
    //! The saved form: flat, named as OAuth names the values, checked on the
    //! way back in so that a tampered or truncated session fails here, with
    //! a reason and without the values, rather than at the token endpoint.

    use std::borrow::Cow;

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{CsrfState, PendingAuthorization, PkceVerifier};

    #[derive(Serialize, Deserialize)]
    struct Wire<'a> {
        state: Cow<'a, str>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code_verifier: Option<Cow<'a, str>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        redirect_uri: Option<Cow<'a, str>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        issuer: Option<Cow<'a, str>>,
        #[serde(default, skip_serializing_if = "is_false")]
        issuer_required: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dpop_jkt: Option<Cow<'a, str>>,
    }

    /// A JWK thumbprint as a server would name it: base64url, no padding,
    /// at most the length of a SHA-512 one. Anything else did not come from
    /// `start` and must not reach an error's text.
    fn is_thumbprint(text: &str) -> bool {
        (1..=86).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }

    fn is_false(value: &bool) -> bool {
        !value
    }

    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    impl Serialize for PendingAuthorization {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            Wire {
                state: Cow::Borrowed(self.state.secret().expose()),
                code_verifier: self
                    .verifier
                    .as_ref()
                    .map(|v| Cow::Borrowed(v.secret().expose())),
                redirect_uri: self.redirect_uri.as_deref().map(Cow::Borrowed),
                issuer: self.issuer().map(Cow::Borrowed),
                issuer_required: self.issuer_required(),
                dpop_jkt: self.dpop_jkt().map(Cow::Borrowed),
            }
            .serialize(serializer)
        }
    }

    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    impl<'de> Deserialize<'de> for PendingAuthorization {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            // serde's own messages quote the values they reject, and these
            // are secrets: say what was expected instead.
            let wire = Wire::deserialize(deserializer).map_err(|_| {
                D::Error::custom(
                    "not a saved PendingAuthorization: expected an object with a string `state` \
                     and optional strings `code_verifier`, `redirect_uri`, `issuer`, `dpop_jkt` and a boolean `issuer_required`",
                )
            })?;
            if wire.state.is_empty() {
                return Err(D::Error::custom("the saved `state` is empty"));
            }
            let mut pending = PendingAuthorization::new(CsrfState::new(wire.state.into_owned()));
            if let Some(verifier) = wire.code_verifier {
                let verifier = PkceVerifier::new(verifier.into_owned()).ok_or_else(|| {
                    D::Error::custom(
                        "the saved `code_verifier` is not an RFC 7636 verifier (43 to 128 characters from A-Z a-z 0-9 - . _ ~)",
                    )
                })?;
                pending = pending.with_verifier(verifier);
            }
            if let Some(uri) = wire.redirect_uri {
                pending = pending.with_redirect_uri(uri.into_owned());
            }
            pending = match (wire.issuer, wire.issuer_required) {
                (Some(issuer), true) => pending.with_required_issuer(issuer.into_owned()),
                (Some(issuer), false) => pending.with_expected_issuer(issuer.into_owned()),
                (None, true) => {
                    return Err(D::Error::custom(
                        "`issuer_required` is set but no `issuer` was saved",
                    ))
                }
                (None, false) => pending,
            };
            if let Some(jkt) = wire.dpop_jkt {
                if !is_thumbprint(&jkt) {
                    return Err(D::Error::custom(
                        "the saved `dpop_jkt` is not a JWK thumbprint (base64url)",
                    ));
                }
                pending = pending.with_dpop_jkt(jkt.into_owned());
            }
            Ok(pending)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn round_trips_with_and_without_optional_parts() {
            let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
            let cases = [
                PendingAuthorization::new(CsrfState::new("s")),
                PendingAuthorization::new(CsrfState::new("s"))
                    .with_verifier(PkceVerifier::new(verifier).unwrap()),
                PendingAuthorization::new(CsrfState::new("s"))
                    .with_redirect_uri("https://app.example/cb?tenant=1")
                    .with_expected_issuer("https://idp.example"),
                PendingAuthorization::new(CsrfState::new("s"))
                    .with_verifier(PkceVerifier::new(verifier).unwrap())
                    .with_redirect_uri("https://app.example/cb")
                    .with_required_issuer("https://idp.example"),
                PendingAuthorization::new(CsrfState::new("s"))
                    .with_dpop_jkt("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"),
            ];
            for pending in cases {
                let json = serde_json::to_string(&pending).unwrap();
                let back: PendingAuthorization = serde_json::from_str(&json).unwrap();
                assert_eq!(back, pending, "{json}");
            }
            assert_eq!(
                serde_json::to_string(&PendingAuthorization::new(CsrfState::new("s"))).unwrap(),
                r#"{"state":"s"}"#
            );
        }

        #[test]
        fn what_start_cannot_have_made_is_refused_without_echoing_it() {
            let cases = [
                (r#"{}"#, "not a saved PendingAuthorization"),
                (r#"{"state":""}"#, "`state` is empty"),
                (r#"{"state":"s","code_verifier":"s3cr3t"}"#, "RFC 7636"),
                (
                    r#"{"state":"s","code_verifier":"s3cr3t s3cr3t s3cr3t s3cr3t s3cr3t s3cr3t"}"#,
                    "RFC 7636",
                ),
                (r#"{"state":"s","issuer_required":true}"#, "no `issuer`"),
                (
                    r#"{"state":"s","dpop_jkt":"s3cr3t\nforged log line"}"#,
                    "`dpop_jkt`",
                ),
                (r#"{"state":"s","dpop_jkt":""}"#, "`dpop_jkt`"),
                (r#"{"state":7}"#, "not a saved PendingAuthorization"),
                (r#""s3cr3t""#, "not a saved PendingAuthorization"),
                (
                    r#"{"state":"s","code_verifier":["s3cr3t"]}"#,
                    "not a saved PendingAuthorization",
                ),
                (
                    r#"{"state":"s","issuer_required":"s3cr3t"}"#,
                    "not a saved PendingAuthorization",
                ),
            ];
            for (json, reason) in cases {
                let err = serde_json::from_str::<PendingAuthorization>(json)
                    .unwrap_err()
                    .to_string();
                assert!(err.contains(reason), "{json}: {err}");
                assert!(!err.contains("s3cr3t"), "{json}: {err}");
            }
        }

        #[test]
        fn unknown_fields_are_ignored_so_sessions_outlive_upgrades() {
            let back: PendingAuthorization =
                serde_json::from_str(r#"{"state":"s","saved_at":1767225600}"#).unwrap();
            assert_eq!(back, PendingAuthorization::new(CsrfState::new("s")));
        }
    }
}
