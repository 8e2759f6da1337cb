//! What the token endpoint's answer to a redemption says of the refresh
//! token presented, in the protocol's terms ([`Redeemed`], [`Verdict`]).

use crate::error::TokenError;
use crate::oauth2::{ErrorCode, ExchangeError, OAuth2Error, TokenResponse};
use crate::secret::Secret;
use crate::shared_tier::error::ChainLoss;
use crate::shared_tier::protocol::{Redeemed, Verdict};

/// What the token endpoint's answer to a redemption says of the refresh
/// token presented: refused before use (an error response other than
/// `invalid_grant`, a connection refused, a certificate refused), spent
/// or revoked (`invalid_grant`), or unknown (no answer, a timeout, a
/// connection lost after the request went out, a response that could not
/// be read, a server error that may have come after the rotation).
pub(super) fn redeemed(presented: &Secret, answer: Result<TokenResponse, TokenError>) -> Redeemed {
    let err = match answer {
        Ok(response) => {
            return Redeemed::Rotated {
                token: response.to_access_token(),
                refresh_token: response
                    .refresh_token()
                    .cloned()
                    .unwrap_or_else(|| presented.clone()),
            }
        }
        Err(err) => err,
    };
    let cause = err.cause();
    let verdict = if let Some(oauth) = cause.and_then(|c| c.downcast_ref::<OAuth2Error>()) {
        match (oauth.code(), oauth.status()) {
            (ErrorCode::InvalidGrant, _) => Verdict::Lost(ChainLoss::Refused),
            // A 500 may come after the server rotated and failed to answer.
            (_, Some(status)) if status.is_server_error() && status.as_u16() != 503 => {
                Verdict::InDoubt
            }
            _ => Verdict::NotConsumed,
        }
    } else if let Some(exchange) = cause.and_then(|c| c.downcast_ref::<ExchangeError>()) {
        match exchange {
            ExchangeError::Transport(inner) if refused_connection(inner.cause()) => {
                Verdict::NotConsumed
            }
            ExchangeError::Certificate(_) => Verdict::NotConsumed,
            ExchangeError::UnexpectedResponse { status, .. }
            | ExchangeError::ResponseTooLarge { status, .. }
                if status.is_client_error() || status.as_u16() == 503 =>
            {
                Verdict::NotConsumed
            }
            _ => Verdict::InDoubt,
        }
    } else {
        Verdict::InDoubt
    };
    Redeemed::Failed(verdict, err)
}

/// Whether the request never left: the connection was refused.
fn refused_connection(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        next = err.source();
    }
    false
}
