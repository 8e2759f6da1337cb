//! The mix-up defence of RFC 9207: an authorization response names the
//! issuer that produced it (`iss`), and a client that knows where it sent
//! the user refuses a response from anywhere else before spending the code.

use super::error::ExchangeError;
use crate::redact;

/// The issuer an authorization request was sent to, and whether that issuer
/// always sends `iss` (its metadata's
/// `authorization_response_iss_parameter_supported`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ExpectedIssuer {
    pub(super) issuer: String,
    pub(super) required: bool,
}

/// RFC 9207 §2.4: an `iss` that is present must equal the expected issuer
/// (simple string comparison, no normalisation); an absent one is refused
/// only where the issuer promised to send it. With no expected issuer
/// nothing can be compared, and every response passes.
pub(super) fn check(
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
