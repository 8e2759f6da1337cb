//! Finds a certificate failure in a transport error's chain, so that it is
//! reported for what it is (and as permanent) instead of as "unreachable".
//!
//! A failed handshake reaches the token endpoint client three levels down:
//! hyper-util's `client error (Connect)`, then the `io::Error` of the TLS
//! stream, which hides the TLS error as its inner error rather than its
//! source.

use std::error::Error as StdError;

/// The TLS library's verdict, if `err` or one of its sources is a
/// certificate failure: the server's certificate was not trusted, or the
/// server refused the client's.
pub(crate) fn certificate_failure(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(reason) = verdict(err).or_else(|| alert_text(err)) {
            return Some(reason);
        }
        // `io::Error` displays its inner error but does not return it as
        // its source (it returns the inner error's source): look inside.
        next = match err.downcast_ref::<std::io::Error>() {
            Some(io) => match io.get_ref() {
                Some(inner) => Some(inner as &(dyn StdError + 'static)),
                None => err.source(),
            },
            None => err.source(),
        };
    }
    None
}

/// The TLS alerts by which a server says it did not accept the client's
/// certificate (or its absence), as rustls names them.
const CERTIFICATE_ALERTS: [&str; 7] = [
    "BadCertificate",
    "UnsupportedCertificate",
    "CertificateRevoked",
    "CertificateExpired",
    "CertificateUnknown",
    "UnknownCA",
    "CertificateRequired",
];

/// A fatal alert that reached the client after the handshake (TLS 1.3
/// checks the client's certificate then) arrives as text: tokio-rustls
/// turns the rustls error into an `io::Error` message on that path.
fn alert_text(err: &(dyn StdError + 'static)) -> Option<String> {
    let text = err.to_string();
    let alert = text.strip_prefix("received fatal alert: ")?;
    CERTIFICATE_ALERTS.contains(&alert).then_some(text)
}

#[cfg(feature = "rustls")]
fn verdict(err: &(dyn StdError + 'static)) -> Option<String> {
    use rustls::Error;

    let err = err.downcast_ref::<Error>()?;
    let certificate = match err {
        Error::InvalidCertificate(_)
        | Error::NoCertificatesPresented
        | Error::InvalidCertRevocationList(_) => true,
        // The server's answer to our certificate (mTLS), or to none.
        Error::AlertReceived(alert) => CERTIFICATE_ALERTS.contains(&format!("{alert:?}").as_str()),
        _ => false,
    };
    certificate.then(|| err.to_string())
}

#[cfg(not(feature = "rustls"))]
fn verdict(_: &(dyn StdError + 'static)) -> Option<String> {
    None
}

#[cfg(all(test, feature = "rustls"))]
mod tests {
    use super::*;
    use crate::error::BoxError;
    use rustls::{AlertDescription, CertificateError, Error};

    /// How hyper-util and hyper-rustls wrap a handshake failure.
    #[derive(Debug)]
    struct Wrapper(BoxError);

    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client error (Connect)")
        }
    }

    impl StdError for Wrapper {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&*self.0)
        }
    }

    fn as_hyper_reports_it(err: Error) -> Wrapper {
        Wrapper(Box::new(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            err,
        )))
    }

    #[test]
    fn certificate_failures_are_found_and_named() {
        let table = [
            (
                Error::InvalidCertificate(CertificateError::UnknownIssuer),
                Some("UnknownIssuer"),
            ),
            (
                Error::InvalidCertificate(CertificateError::Expired),
                Some("Expired"),
            ),
            (
                Error::AlertReceived(AlertDescription::CertificateRequired),
                Some("CertificateRequired"),
            ),
            (
                Error::AlertReceived(AlertDescription::UnknownCA),
                Some("UnknownCA"),
            ),
            (Error::NoCertificatesPresented, Some("")),
            (
                Error::AlertReceived(AlertDescription::HandshakeFailure),
                None,
            ),
            (Error::HandshakeNotComplete, None),
        ];
        for (err, expected) in table {
            let shown = err.to_string();
            let found = certificate_failure(&as_hyper_reports_it(err));
            match expected {
                Some(part) => {
                    let reason = found.unwrap_or_else(|| panic!("{shown} not found"));
                    assert!(reason.contains(part), "{reason}");
                    assert_eq!(reason, shown);
                }
                None => assert_eq!(found, None, "{shown}"),
            }
        }
    }

    #[test]
    fn nested_io_errors_and_alerts_as_text_are_looked_into() {
        let nested = Wrapper(Box::new(std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            Error::InvalidCertificate(CertificateError::UnknownIssuer),
        ))));
        assert_eq!(
            certificate_failure(&nested).as_deref(),
            Some("invalid peer certificate: UnknownIssuer")
        );
        let as_text = |alert: &str| {
            let io = std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("received fatal alert: {alert}"),
            );
            certificate_failure(&Wrapper(Box::new(io)))
        };
        assert_eq!(
            as_text("CertificateRequired").as_deref(),
            Some("received fatal alert: CertificateRequired")
        );
        assert_eq!(as_text("HandshakeFailure"), None);
    }

    #[test]
    fn other_transport_errors_are_not_certificate_failures() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(certificate_failure(&Wrapper(Box::new(refused))), None);
    }
}
