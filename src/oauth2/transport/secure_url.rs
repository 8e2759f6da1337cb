//! Which URLs may carry credentials: `https://` anywhere, plain `http://` only
//! to a loopback host or where the user allowed it.

use std::net::IpAddr;

use http::Uri;

use crate::oauth2::BuildError;
use crate::redact;

/// Parses `url` if secrets may be sent to it.
pub(crate) fn parse(url: &str, allow_insecure_http: bool) -> Result<Uri, BuildError> {
    let invalid = |reason| BuildError::InvalidUrl {
        url: redact::url(url),
        reason,
    };
    let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    let host = uri.host().ok_or_else(|| invalid("no host"))?;
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        // It would be logged with the URL; use client_id/client_secret instead.
        return Err(invalid("credentials in the URL are not supported"));
    }
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if allow_insecure_http || is_loopback(host) => Ok(uri),
        Some("http") => Err(BuildError::InsecureUrl {
            url: redact::url(url),
        }),
        _ => Err(invalid("the scheme must be https")),
    }
}

/// Traffic to these hosts never leaves the machine.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_to_loopback_or_when_allowed() {
        for ok in [
            "https://auth.example.com/token",
            "http://127.0.0.1:1/t",
            "http://[::1]:8/t",
            "http://localhost/t",
            "http://127.3.4.5/t",
        ] {
            assert!(parse(ok, false).is_ok(), "{ok}");
        }
        for insecure in [
            "http://auth.example.com/token",
            "http://localhost.evil.com/token",
        ] {
            let err = parse(insecure, false).unwrap_err();
            assert!(matches!(err, BuildError::InsecureUrl { .. }), "{insecure}");
        }
        assert!(parse("http://auth.example.com/token", true).is_ok());
        for invalid in [
            "ftp://x/y",
            "/token",
            "https://user:pw@auth.example.com/token",
        ] {
            let err = parse(invalid, false).unwrap_err();
            assert!(matches!(err, BuildError::InvalidUrl { .. }), "{invalid}");
        }
    }
}
