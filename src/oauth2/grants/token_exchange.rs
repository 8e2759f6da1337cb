//! OAuth 2.0 token exchange (RFC 8693): a token one has, for the token an API
//! wants.

use std::fmt;

use super::grant_params::{grant_setters, GrantParams};
use super::security_token::SecurityToken;
use super::token_type::TokenType;
use crate::error::TokenError;
use crate::oauth2::endpoint::token_endpoint::TokenEndpoint;
use crate::source::TokenSource;
use crate::token::AccessToken;

/// `grant_type` of token exchange.
const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// Obtains access tokens by token exchange (RFC 8693 §2.1): each fetch reads
/// the subject token (and the actor token, if any) afresh and sends them
/// with their types, the `requested_token_type`, then the `scope`,
/// `audience`s and `resource`s asked for. Client authentication is the token
/// endpoint's, as for any grant.
///
/// The issued token must be usable as a bearer access token: a response
/// whose `token_type` is `N_A` (RFC 8693 §2.2.1: the token is not an access
/// token) is refused. The response's `issued_token_type` is kept in
/// [`TokenResponse::extra`](crate::oauth2::TokenResponse::extra) for custom exchanges.
///
/// ```
/// use tower_bearer::oauth2::{ClientAuth, SecurityToken, TokenEndpoint, TokenExchange, TokenType};
/// use tower_bearer::BearerAuthLayer;
///
/// # fn main() -> Result<(), tower_bearer::oauth2::BuildError> {
/// // A workload in Kubernetes trades its projected service-account token
/// // for an access token to an internal API.
/// let sts = TokenEndpoint::builder("https://sts.example.com/oauth2/token")
///     .client_auth(ClientAuth::None)
///     .build()?;
/// let subject = SecurityToken::from_file("/var/run/secrets/tokens/sts-token", TokenType::JWT);
/// let source = TokenExchange::new(sts, subject)
///     .audience("billing-api")
///     .resource("https://billing.internal.example.com/")
///     .scope("invoices:read")
///     .requested_token_type(TokenType::ACCESS_TOKEN);
/// let layer = BearerAuthLayer::new(source);
/// # let _ = layer; Ok(()) }
/// ```
pub struct TokenExchange {
    endpoint: TokenEndpoint,
    subject: SecurityToken,
    actor: Option<SecurityToken>,
    requested_token_type: Option<TokenType>,
    params: GrantParams,
}

impl TokenExchange {
    /// A source that exchanges `subject` at `endpoint`.
    pub fn new(endpoint: TokenEndpoint, subject: SecurityToken) -> Self {
        Self {
            endpoint,
            subject,
            actor: None,
            requested_token_type: None,
            params: GrantParams::default(),
        }
    }

    grant_setters!(params);

    /// The type of token asked for (`requested_token_type`); the server
    /// chooses when it is not sent.
    pub fn requested_token_type(mut self, token_type: TokenType) -> Self {
        self.requested_token_type = Some(token_type);
        self
    }

    /// Who acts for the subject (delegation, RFC 8693 §1.1): sent as
    /// `actor_token` and `actor_token_type`.
    pub fn actor(mut self, actor: SecurityToken) -> Self {
        self.actor = Some(actor);
        self
    }

    /// The endpoint asked.
    pub fn endpoint(&self) -> &TokenEndpoint {
        &self.endpoint
    }
}

impl TokenSource for TokenExchange {
    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        let subject = self.subject.value().await?;
        let actor = match &self.actor {
            Some(actor) => Some((actor.value().await?, actor.token_type())),
            None => None,
        };
        let mut params = vec![
            ("grant_type", TOKEN_EXCHANGE_GRANT),
            ("subject_token", subject.expose()),
            ("subject_token_type", self.subject.token_type().as_str()),
        ];
        if let Some((token, token_type)) = &actor {
            params.push(("actor_token", token.expose()));
            params.push(("actor_token_type", token_type.as_str()));
        }
        if let Some(requested) = &self.requested_token_type {
            params.push(("requested_token_type", requested.as_str()));
        }
        self.params.append_to(&mut params);
        let response = self.endpoint.request(&params).await?;
        Ok(response.to_access_token())
    }
}

impl fmt::Debug for TokenExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenExchange")
            .field("endpoint", &self.endpoint)
            .field("subject", &self.subject)
            .field("actor", &self.actor)
            .field("requested_token_type", &self.requested_token_type)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}
