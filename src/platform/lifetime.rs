//! When a platform's token expires, from whatever its answer says: a
//! lifetime in seconds (a number or a numeric string), a Unix time
//! (`expires_on`, a JWT's `exp`), or an RFC 3339 time (`expireTime`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

use crate::token::AccessToken;

/// A whole number of seconds, as a JSON number or a string of digits
/// (Azure sends `"expires_in": "86399"` and `"expires_on": "1506484173"`).
pub(crate) fn seconds(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    }
}

/// `token`, expiring at the Unix time `at` (seconds) by the wall clock
/// `now`: the lifetime left is counted on the cache's own clock from here.
/// A time already past leaves no lifetime.
pub(crate) fn expiring_at(token: AccessToken, at: u64, now: SystemTime) -> AccessToken {
    let left = (UNIX_EPOCH + Duration::from_secs(at))
        .duration_since(now)
        .unwrap_or(Duration::ZERO);
    token.with_expires_in(left)
}

/// The `exp` claim of a JWT, read without checking the signature: the
/// token's issuer checks it; this only says when to fetch the next one.
pub(crate) fn jwt_exp(jwt: &str) -> Option<u64> {
    let payload = jwt.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims.get("exp")?.as_u64()
}

/// An RFC 3339 date-time (`2026-11-22T12:00:00.5Z`, `…+01:00`) as Unix
/// seconds, its fraction dropped.
pub(crate) fn rfc3339(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // A leap second counts as the next second's start.
    if second > 60 {
        return None;
    }
    let mut rest = &b[19..];
    if rest.first() == Some(&b'.') {
        let fraction = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if fraction == 0 {
            return None;
        }
        rest = &rest[1 + fraction..];
    }
    let offset = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let two = |a: u8, b: u8| -> Option<i64> {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| i64::from(a - b'0') * 10 + i64::from(b - b'0'))
            };
            let minutes = two(*h1, *h2)? * 60 + two(*m1, *m2)?;
            if *sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let unix = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    u64::try_from(unix).ok()
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar
/// (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seconds_as_numbers_or_digit_strings() {
        for (value, expected) in [
            (json!(3599), Some(3599)),
            (json!("86399"), Some(86399)),
            (json!("1506484173"), Some(1_506_484_173)),
            (json!(""), None),
            (json!("12s"), None),
            (json!(-1), None),
            (json!(1.5), None),
            (json!(null), None),
        ] {
            assert_eq!(seconds(&value), expected, "{value}");
        }
    }

    #[test]
    fn rfc3339_times() {
        for (text, expected) in [
            ("1970-01-01T00:00:00Z", Some(0)),
            ("2014-10-02T15:01:23.045123456Z", Some(1_412_262_083)),
            ("2014-10-02T15:01:23Z", Some(1_412_262_083)),
            ("2014-10-02T17:01:23+02:00", Some(1_412_262_083)),
            ("2014-10-02T14:31:23-00:30", Some(1_412_262_083)),
            ("2000-02-29T00:00:00Z", Some(951_782_400)),
            ("2026-11-22t12:00:00z", Some(1_795_348_800)),
            ("2014-10-02 15:01:23Z", None),
            ("2014-10-02T15:01:23", None),
            ("2014-10-02T15:01:23.Z", None),
            ("2014-13-02T15:01:23Z", None),
            ("1969-12-31T23:59:59Z", None),
            ("", None),
        ] {
            assert_eq!(rfc3339(text), expected, "{text}");
        }
    }

    #[test]
    fn a_jwts_exp_unverified() {
        let jwt = |claims: &str| {
            format!(
                "eyJhbGciOiJSUzI1NiJ9.{}.sig",
                URL_SAFE_NO_PAD.encode(claims)
            )
        };
        assert_eq!(
            jwt_exp(&jwt(r#"{"exp":1800000600,"aud":"x"}"#)),
            Some(1_800_000_600)
        );
        assert_eq!(jwt_exp(&jwt(r#"{"aud":"x"}"#)), None);
        assert_eq!(jwt_exp(&jwt("not json")), None);
        assert_eq!(jwt_exp("opaque-token"), None);
    }

    #[test]
    fn expiring_at_counts_from_the_wall_clock() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let token = expiring_at(AccessToken::new("t"), 1_600, now);
        let left = token.expires_at().unwrap() - token.received_at();
        assert_eq!(left, Duration::from_secs(600));
        let past = expiring_at(AccessToken::new("t"), 900, now);
        assert_eq!(past.expires_at(), Some(past.received_at()));
    }
}
