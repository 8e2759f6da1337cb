//! The token endpoint: issues tokens, rotates the refresh token at every
//! redemption and revokes the grant when a spent one comes back; slow,
//! overloaded or losing its answer while faults last. Checks invariant 1 at
//! every presentation.

use super::events::Ev;
use super::parameters::{ms, HTTP_TIMEOUT, LIFE};
use super::state::{Presentation, World};
use crate::error::TokenError;
use crate::secret::Secret;
use crate::shared_tier::error::ChainLoss;
use crate::shared_tier::protocol::{Action, Event, Redeemed, Verdict};
use crate::token::AccessToken;

impl World {
    pub(super) fn call_provider(&mut self, run: u64, action: Action) {
        let (r, i) = {
            let sim = &self.runs[&run];
            (sim.replica, sim.ident)
        };
        let waiting = self.wait_for(run);
        self.runs.get_mut(&run).expect("a live run").asked_at = self.now;
        let fault = self.faulty() && self.rng.chance(self.provider_fault);
        let slow = self.faulty() && self.rng.chance(0.03);
        let latency = if slow {
            self.rng.range(500, 2_500)
        } else {
            self.rng.range(1, 40)
        };
        match action {
            Action::Fetch { .. } => {
                let answer = if fault {
                    Err(TokenError::transient("temporarily_unavailable")
                        .with_retry_after(ms(200))
                        .endpoint_overloaded())
                } else {
                    self.provider.issued[i] += 1;
                    self.outcome.fetches += 1;
                    Ok(self.provider.issued[i])
                };
                let event = match answer {
                    Ok(n) => {
                        // Issued now; received, with its lifetime, on arrival.
                        let secret = format!("{}-{n}", self.idents[i].tag);
                        let arrives = self.local(r) + ms(latency);
                        Event::Fetched(Ok(AccessToken::new(secret)
                            .with_expires_at(arrives + ms(LIFE))
                            .with_received_at(arrives)))
                    }
                    Err(err) => Event::Fetched(Err(err)),
                };
                self.trace(|| {
                    format!("r{r} {i}: endpoint answers a token request in {latency} ms")
                });
                self.at(self.now + latency, Ev::Reply(run, waiting, event));
            }
            Action::Redeem { refresh_token } => {
                self.outcome.redemptions += 1;
                let presented = refresh_token.expose().to_owned();
                let index = refresh_index(&presented, self.idents[i].tag).unwrap_or(u64::MAX);
                self.check_presentation(r, index, &presented);
                let roll = self.rng.unit();
                let (event, refused_unused, lost) = if fault && roll < 0.4 {
                    let err =
                        TokenError::transient("temporarily_unavailable").endpoint_overloaded();
                    (
                        Event::Redeemed(Redeemed::Failed(Verdict::NotConsumed, err)),
                        true,
                        false,
                    )
                } else {
                    let processed = !(fault && roll < 0.55);
                    let answer = if processed {
                        self.process(i, index)
                    } else {
                        None
                    };
                    if fault && roll < 0.7 {
                        // The answer (or the request) is lost: the client times out.
                        self.provider.in_doubt = true;
                        let err = TokenError::transient("token endpoint timed out");
                        (
                            Event::Redeemed(Redeemed::Failed(Verdict::InDoubt, err)),
                            false,
                            true,
                        )
                    } else {
                        let event = match answer {
                            Some(next) => {
                                let arrives = self.local(r) + ms(latency);
                                let token =
                                    AccessToken::new(format!("{}-{}", self.idents[i].tag, next))
                                        .with_expires_at(arrives + ms(LIFE))
                                        .with_received_at(arrives);
                                Redeemed::Rotated {
                                    token,
                                    refresh_token: Secret::new(format!(
                                        "{}rt-{next}",
                                        self.idents[i].tag
                                    )),
                                }
                            }
                            None => Redeemed::Failed(
                                Verdict::Lost(ChainLoss::Refused),
                                TokenError::permanent("invalid_grant: grant request is invalid"),
                            ),
                        };
                        (Event::Redeemed(event), false, false)
                    }
                };
                self.provider
                    .presentations
                    .entry(index)
                    .or_default()
                    .push(Presentation { refused_unused });
                let delay = if lost { HTTP_TIMEOUT } else { latency };
                self.trace(|| {
                    format!(
                        "r{r} {i}: endpoint answers the redemption of {presented} in {delay} ms"
                    )
                });
                self.at(self.now + delay, Ev::Reply(run, waiting, event));
            }
            other => unreachable!("not a provider action: {other:?}"),
        }
    }

    /// Redeems refresh token `index`: the next one, or `None` (refused;
    /// a spent one revokes the grant).
    fn process(&mut self, i: usize, index: u64) -> Option<u64> {
        let provider = &mut self.provider;
        if provider.revoked || provider.current_refresh != Some(index) {
            if !provider.revoked && provider.presentations.contains_key(&index) {
                // Reuse: the whole grant goes.
                provider.revoked = true;
                provider.current_refresh = None;
            }
            return None;
        }
        let next = provider.next_refresh;
        provider.next_refresh += 1;
        provider.current_refresh = Some(next);
        provider.issued[i] = provider.issued[i].max(next);
        Some(next)
    }

    /// Invariant 1.
    fn check_presentation(&mut self, r: usize, index: u64, presented: &str) {
        let earlier = self.provider.presentations.get(&index);
        let again = earlier.is_some_and(|ps| ps.iter().any(|p| !p.refused_unused));
        if !self.chain_record_lost {
            if again {
                self.violation(format!(
                    "r{r}: {presented} presented again after it was redeemed or in doubt"
                ));
            }
        } else if self.replicas[r]
            .seen_refresh
            .is_some_and(|seen| seen > index)
        {
            self.violation(format!(
                "r{r}: {presented} presented again, though this replica had seen a newer refresh token"
            ));
        } else if again {
            // The residual the module documentation states: Redis lost the
            // chain, and this replica had not seen the lost part.
            self.outcome.unknowable_reuses += 1;
        }
    }
}

pub(super) fn refresh_index(refresh_token: &str, tag: &str) -> Option<u64> {
    refresh_token
        .strip_prefix(tag)?
        .strip_prefix("rt-")?
        .parse()
        .ok()
}
