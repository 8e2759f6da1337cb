//! What the world writes down: a line per event when tracing, and the
//! invariants' violations.

use super::state::World;
use crate::error::TokenError;
use crate::shared_tier::protocol::Action;
use crate::token::AccessToken;

impl World {
    pub(super) fn trace(&mut self, line: impl FnOnce() -> String) {
        if self.tracing {
            let line = line();
            self.outcome.trace.push(format!("{:>6} {line}", self.now));
        }
    }

    pub(super) fn violation(&mut self, what: String) {
        self.trace(|| format!("VIOLATION {what}"));
        self.outcome
            .violations
            .push(format!("t={} {what}", self.now));
    }
}

pub(super) fn short(result: &Result<AccessToken, TokenError>) -> String {
    match result {
        Ok(token) => token.secret().to_owned(),
        Err(err) => format!("error: {err}"),
    }
}

pub(super) fn describe(action: &Action) -> String {
    match action {
        Action::Answer(result) => format!("Answer({})", short(result)),
        Action::Fetch { fallback, .. } => format!("Fetch(fallback: {fallback})"),
        Action::Write { lease, token } => format!("Write({}, {})", lease.value(), token.secret()),
        Action::Redeem { refresh_token } => format!("Redeem({})", refresh_token.expose()),
        Action::Commit {
            lease,
            pos,
            refresh_token,
            token,
        } => format!(
            "Commit({}, {}#{}, {}, {})",
            lease.value(),
            pos.epoch,
            pos.seq,
            refresh_token.expose(),
            token.secret()
        ),
        Action::Adopt {
            refresh_token,
            rotated_here,
        } => {
            format!("Adopt({}, {rotated_here})", refresh_token.expose())
        }
        other => {
            let text = format!("{other:?}");
            text.chars().take(160).collect()
        }
    }
}
