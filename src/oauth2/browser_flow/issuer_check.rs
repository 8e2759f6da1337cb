//! The mix-up defence of RFC 9207: an authorization response names the
//! issuer that produced it (`iss`), and a client that knows where it sent
//! the user refuses a response from anywhere else before spending the code.

use crate::oauth2::ExchangeError;
use crate::redact;

/// The issuer an authorization request was sent to, and whether that issuer
/// always sends `iss` (its metadata's
/// `authorization_response_iss_parameter_supported`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExpectedIssuer {
    pub(crate) issuer: String,
    pub(crate) required: bool,
}

/// RFC 9207 §2.4: an `iss` that is present must equal the expected issuer
/// (simple string comparison, no normalisation); an absent one is refused
/// only where the issuer promised to send it. With no expected issuer
/// nothing can be compared, and every response passes.
pub(crate) fn check(
    expected: Option<&ExpectedIssuer>,
    returned: Option<&str>,
) -> Result<(), ExchangeError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    match returned {
        Some(returned) if returned == expected.issuer => Ok(()),
        Some(returned) => Err(ExchangeError::IssuerMismatch {
            expected: expected.issuer.clone(),
            // Anyone can put anything in a redirect: escape and cap it.
            returned: redact::server_text(returned, &[]),
        }),
        None if expected.required => Err(ExchangeError::MissingIssuer {
            expected: expected.issuer.clone(),
        }),
        None => Ok(()),
    }
}

/// The issuer an exchange checks the callback against: the one the
/// authorization was started with, or the finishing flow's if the pending
/// authorization names none. Both named and different means the wrong flow
/// is finishing it, and its token endpoint must not get the code.
pub(crate) fn for_exchange(
    flow: Option<&ExpectedIssuer>,
    pending: Option<&ExpectedIssuer>,
) -> Result<Option<ExpectedIssuer>, ExchangeError> {
    match (flow, pending) {
        (None, None) => Ok(None),
        (Some(only), None) | (None, Some(only)) => Ok(Some(only.clone())),
        (Some(flow), Some(pending)) if flow.issuer == pending.issuer => Ok(Some(ExpectedIssuer {
            issuer: pending.issuer.clone(),
            required: flow.required || pending.required,
        })),
        (Some(flow), Some(pending)) => Err(ExchangeError::FlowMismatch {
            started_with: pending.issuer.clone(),
            finishing_with: flow.issuer.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Outcome {
        Pass,
        Mismatch,
        Missing,
    }

    #[test]
    fn decisions() {
        let idp = "https://idp.example";
        let when_sent = ExpectedIssuer {
            issuer: idp.to_owned(),
            required: false,
        };
        let required = ExpectedIssuer {
            issuer: idp.to_owned(),
            required: true,
        };
        let cases: &[(Option<&ExpectedIssuer>, Option<&str>, Outcome)] = &[
            // Nothing expected: nothing to compare with.
            (None, None, Outcome::Pass),
            (None, Some("https://evil.example"), Outcome::Pass),
            // Expected, and compared whenever sent.
            (Some(&when_sent), Some(idp), Outcome::Pass),
            (
                Some(&when_sent),
                Some("https://evil.example"),
                Outcome::Mismatch,
            ),
            (Some(&when_sent), None, Outcome::Pass),
            // Simple string comparison: no normalisation of any kind.
            (
                Some(&when_sent),
                Some("https://idp.example/"),
                Outcome::Mismatch,
            ),
            (
                Some(&when_sent),
                Some("HTTPS://IDP.EXAMPLE"),
                Outcome::Mismatch,
            ),
            (Some(&when_sent), Some(""), Outcome::Mismatch),
            // The issuer promised `iss`: its absence is refused too.
            (Some(&required), Some(idp), Outcome::Pass),
            (
                Some(&required),
                Some("https://evil.example"),
                Outcome::Mismatch,
            ),
            (Some(&required), None, Outcome::Missing),
        ];
        for (expected, returned, outcome) in cases {
            let got = match check(*expected, *returned) {
                Ok(()) => Outcome::Pass,
                Err(ExchangeError::IssuerMismatch { .. }) => Outcome::Mismatch,
                Err(ExchangeError::MissingIssuer { .. }) => Outcome::Missing,
                Err(other) => panic!("{other:?}"),
            };
            assert_eq!(
                &got, outcome,
                "expected {expected:?}, returned {returned:?}"
            );
        }
    }

    /// What an exchange should expect, in `which_issuer_an_exchange_expects`.
    #[derive(Debug)]
    enum Expect<'a> {
        Issuer(Option<&'a ExpectedIssuer>),
        WrongFlow,
    }

    #[test]
    fn which_issuer_an_exchange_expects() {
        let issuer = |name: &str, required| ExpectedIssuer {
            issuer: format!("https://{name}.example"),
            required,
        };
        let (idp, idp_required, other) = (
            issuer("idp", false),
            issuer("idp", true),
            issuer("other", true),
        );
        let cases = [
            (None, None, Expect::Issuer(None)),
            // A pending authorization saved without an issuer still gets the
            // flow's check, and one saved with it needs no flow issuer.
            (
                Some(&idp_required),
                None,
                Expect::Issuer(Some(&idp_required)),
            ),
            (None, Some(&idp), Expect::Issuer(Some(&idp))),
            // Same issuer: required if either says so.
            (Some(&idp), Some(&idp), Expect::Issuer(Some(&idp))),
            (
                Some(&idp_required),
                Some(&idp),
                Expect::Issuer(Some(&idp_required)),
            ),
            (
                Some(&idp),
                Some(&idp_required),
                Expect::Issuer(Some(&idp_required)),
            ),
            // Started with one issuer, finishing with another's flow.
            (Some(&other), Some(&idp), Expect::WrongFlow),
        ];
        for (flow, pending, expected) in cases {
            match (&expected, for_exchange(flow, pending)) {
                (Expect::Issuer(expected), Ok(got)) => assert_eq!(got.as_ref(), *expected),
                (
                    Expect::WrongFlow,
                    Err(ExchangeError::FlowMismatch {
                        started_with,
                        finishing_with,
                    }),
                ) => assert_eq!(
                    (started_with.as_str(), finishing_with.as_str()),
                    ("https://idp.example", "https://other.example")
                ),
                (expected, got) => {
                    panic!("{flow:?} {pending:?}: expected {expected:?}, got {got:?}")
                }
            }
        }
    }

    #[test]
    fn a_returned_issuer_cannot_forge_log_lines() {
        let expected = ExpectedIssuer {
            issuer: "https://idp.example".to_owned(),
            required: false,
        };
        let err = check(Some(&expected), Some("https://x\nINFO forged")).unwrap_err();
        assert!(!err.to_string().contains('\n'), "{err}");
        assert!(matches!(
            err,
            ExchangeError::IssuerMismatch { ref returned, .. } if returned == "https://x\\nINFO forged"
        ));
    }
}
