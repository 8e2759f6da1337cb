//! The access token: a secret value and what is known about its lifetime.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::dpop::DpopProver;

/// What a token source knows about when a token stops being valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// The source did not say (no `expires_in`): the cache applies its default
    /// lifetime ([`TokenCacheBuilder::default_lifetime`](crate::TokenCacheBuilder::default_lifetime)).
    Unknown,
    /// The token is valid until this monotonic instant.
    At(Instant),
    /// The token never expires (a static API key).
    Never,
}

/// An access token: the secret, its expiry, and its scope.
///
/// The secret never appears in `Debug` output. Expiry is a monotonic
/// [`Instant`] (tokio's, so tests can pause time), computed
/// once when the token is received; lifetimes too large to represent, such as an
/// `expires_in` of `u64::MAX` seconds, saturate to [`Expiry::Never`] instead of
/// overflowing.
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::AccessToken;
///
/// let token = AccessToken::new("s3cr3t")
///     .with_expires_in(Duration::from_secs(3600))
///     .with_scope("api/access");
/// assert_eq!(token.secret(), "s3cr3t");
/// assert_eq!(token.scope(), Some("api/access"));
/// assert!(!format!("{token:?}").contains("s3cr3t"));
///
/// // Huge lifetimes do not overflow.
/// let forever = AccessToken::new("k").with_expires_in(Duration::from_secs(u64::MAX));
/// assert_eq!(forever.expiry(), tower_bearer::Expiry::Never);
/// ```
#[derive(Clone)]
pub struct AccessToken {
    secret: Arc<str>,
    expiry: Expiry,
    received_at: Instant,
    scope: Option<Arc<str>>,
    /// The key a DPoP-bound token is bound to; `None` for a bearer token.
    dpop: Option<Arc<dyn DpopProver>>,
}

impl AccessToken {
    /// A token with the given secret and an unknown expiry, received now.
    pub fn new(secret: impl Into<String>) -> Self {
        Self {
            secret: Arc::from(secret.into()),
            expiry: Expiry::Unknown,
            received_at: Instant::now(),
            scope: None,
            dpop: None,
        }
    }

    /// Sets the lifetime counted from when the token was received (`expires_in`).
    ///
    /// A lifetime too large to add to the clock means the token never expires.
    pub fn with_expires_in(mut self, lifetime: Duration) -> Self {
        self.expiry = match self.received_at.checked_add(lifetime) {
            Some(at) => Expiry::At(at),
            None => Expiry::Never,
        };
        self
    }

    /// Sets the instant at which the token expires.
    pub fn with_expires_at(mut self, at: Instant) -> Self {
        self.expiry = Expiry::At(at);
        self
    }

    /// Sets when the token was received: a token handed over from elsewhere
    /// (the shared tier) keeps the moment it was issued, so that the cache
    /// sizes its skew from the token's whole lifetime.
    #[cfg(feature = "redis")]
    pub(crate) fn with_received_at(mut self, at: Instant) -> Self {
        self.received_at = at;
        self
    }

    /// Marks the token as never expiring (a long-lived API key).
    pub fn never_expires(mut self) -> Self {
        self.expiry = Expiry::Never;
        self
    }

    /// Sets the scope the server granted.
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(Arc::from(scope.into()));
        self
    }

    /// Binds the token to a DPoP key (its `token_type` was `DPoP`): requests
    /// carry it as `Authorization: DPoP <token>`, each with a fresh proof
    /// from `prover` ([`dpop`](crate::dpop)).
    pub fn bound_with_dpop(mut self, prover: Arc<dyn DpopProver>) -> Self {
        self.dpop = Some(prover);
        self
    }

    /// The prover of the key the token is bound to, if it is DPoP-bound.
    pub fn dpop(&self) -> Option<&Arc<dyn DpopProver>> {
        self.dpop.as_ref()
    }

    /// The secret value. Handle with care: this is the credential.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// What is known about the token's expiry.
    pub fn expiry(&self) -> Expiry {
        self.expiry
    }

    /// The instant the token expires, if known and finite.
    pub fn expires_at(&self) -> Option<Instant> {
        match self.expiry {
            Expiry::At(at) => Some(at),
            Expiry::Unknown | Expiry::Never => None,
        }
    }

    /// When the token was received (created).
    pub fn received_at(&self) -> Instant {
        self.received_at
    }

    /// The scope the server granted, if it said.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// What is known about the token besides its secret: a cache keeps the
    /// secret once, in the prepared header value, and these beside it.
    pub(crate) fn into_facts(self) -> TokenFacts {
        TokenFacts {
            expiry: self.expiry,
            received_at: self.received_at,
            scope: self.scope,
            dpop: self.dpop.map(Box::new),
        }
    }

    /// The token again, from its secret and `facts`.
    pub(crate) fn from_facts(secret: &str, facts: &TokenFacts) -> Self {
        Self {
            secret: Arc::from(secret),
            expiry: facts.expiry,
            received_at: facts.received_at,
            scope: facts.scope.clone(),
            dpop: facts.dpop.as_deref().cloned(),
        }
    }
}

/// An [`AccessToken`] without its secret.
#[derive(Clone, Debug)]
pub(crate) struct TokenFacts {
    pub(crate) expiry: Expiry,
    received_at: Instant,
    scope: Option<Arc<str>>,
    /// The key a DPoP-bound token is bound to. Boxed, a thin pointer: every
    /// cached token holds facts, few are bound, and 8 bytes less per token
    /// is 8 bytes less per idle cache and per idle key.
    pub(crate) dpop: Option<Box<Arc<dyn DpopProver>>>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &crate::redact::Redacted)
            .field("expiry", &self.expiry)
            .field("received_at", &self.received_at)
            .field("scope", &self.scope)
            .field("dpop_jkt", &self.dpop.as_ref().map(|p| p.thumbprint()))
            .finish()
    }
}
