//! What may be printed of secrets, URLs and whatever a server sends: the one
//! place that decides what errors, `Debug` output and tracing events show.
//!
//! Servers are not trusted to keep secrets out of what they say: an error
//! page may echo the request, an `error_description` the refresh token, and
//! any of them may carry a `\n` that forges a log line. So every text a
//! server sends goes through [`server_text`] before an error keeps it:
//!
//! 1. the secrets the client sent are cut out wherever they appear;
//! 2. the value of every secret-bearing key (`refresh_token=…`,
//!    `"client_secret": "…"`, `Authorization: Basic …`) is replaced;
//! 3. control, line-separator and bidi characters are escaped;
//! 4. the result is cut to 200 characters.
//!
//! Values are redacted by key rather than shown by an allow-list of keys: the
//! useful part of an error page sits under keys nobody can list (`message`,
//! `detail`, `title`), while the secret-bearing keys are few and named by the
//! RFCs; the key rule below matches them by their endings, so the names the
//! RFCs add later (`*_token`, `*_secret`, `*_assertion`) are covered too.

use std::fmt;
use std::ops::Range;

const PLACEHOLDER: &str = "[redacted]";

/// The most characters shown of any one text a server sent.
const MAX_SERVER_TEXT_CHARS: usize = 200;

/// Placeholder printed wherever a secret would be.
pub(crate) struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PLACEHOLDER)
    }
}

impl fmt::Display for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PLACEHOLDER)
    }
}

/// `url` fit for an error message or a log: user info and query replaced by
/// `[redacted]` (either may carry credentials), works on any input.
pub(crate) fn url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("{PLACEHOLDER}@{}", &authority[at + 1..]),
        None => authority.to_owned(),
    };
    let tail = match tail.find(['?', '#']) {
        Some(q) => format!("{}?{PLACEHOLDER}", &tail[..q]),
        None => tail.to_owned(),
    };
    format!("{scheme}{authority}{tail}")
}

/// A text a server sent (an `error_description`, an error code, a token
/// type), fit for an error message or a log; `sent` are the secrets the
/// client sent it, which it may echo.
pub(crate) fn server_text(text: &str, sent: &[&str]) -> String {
    let mut ranges = secret_values(text);
    for secret in sent.iter().filter(|s| !s.is_empty()) {
        ranges.extend(text.match_indices(secret).map(|(at, s)| at..at + s.len()));
    }
    escape_and_cap(&replace(text, ranges), MAX_SERVER_TEXT_CHARS)
}

/// A URL a server sent (`error_uri`): without user info and query, then as
/// any [`server_text`].
pub(crate) fn server_url(text: &str, sent: &[&str]) -> String {
    server_text(&url(text), sent)
}

/// The text of an error the client's own HTTP stack raised (a transport
/// error), fit for an error message or a log: as [`server_text`], and the
/// user info and query of every URL in it replaced, since HTTP clients name
/// the URL they failed to reach, query and all (`?subscription-key=…`).
pub(crate) fn error_text(text: &str, sent: &[&str]) -> String {
    let mut ranges = secret_values(text);
    ranges.extend(url_credentials(text));
    for secret in sent.iter().filter(|s| !s.is_empty()) {
        ranges.extend(text.match_indices(secret).map(|(at, s)| at..at + s.len()));
    }
    escape_and_cap(&replace(text, ranges), MAX_SERVER_TEXT_CHARS)
}

/// The byte ranges of the user info and of the query and fragment of every
/// URL (`scheme://…`) in `text`; a URL ends at whitespace, a quote, a
/// bracket or a parenthesis.
fn url_credentials(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let ends_url = |b: u8| b.is_ascii_whitespace() || b"\"'<>()[]{}`".contains(&b);
    let mut ranges = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let authority_start = from + found + 3;
        let end = bytes[authority_start..]
            .iter()
            .position(|&b| ends_url(b))
            .map_or(bytes.len(), |n| authority_start + n);
        let url = &text[authority_start..end];
        let authority_len = url.find(['/', '?', '#']).unwrap_or(url.len());
        if let Some(at) = url[..authority_len].rfind('@') {
            ranges.push(authority_start..authority_start + at);
        }
        if let Some(q) = url.find(['?', '#']) {
            if authority_start + q + 1 < end {
                ranges.push(authority_start + q + 1..end);
            }
        }
        from = end.max(authority_start);
    }
    ranges
}

/// The start of a response body, as [`server_text`].
pub(crate) fn excerpt(body: &[u8], sent: &[&str]) -> String {
    server_text(&String::from_utf8_lossy(body), sent)
}

/// Keys whose values are secrets though their names say little.
const SECRET_KEYS: [&str; 4] = ["code", "device_code", "user_code", "state"];

/// Endings of keys whose values are secrets: every `*token` (`access_token`,
/// `refresh_token`, `id_token`, `token`, `subject_token`, `actor_token`),
/// `client_secret`, `password`, `assertion` and `client_assertion`,
/// `code_verifier`, API keys, credentials, and the (`Proxy-`)`Authorization`
/// header, whose Basic credentials are the client secret merely encoded.
const SECRET_KEY_ENDINGS: [&str; 10] = [
    "token",
    "secret",
    "password",
    "passwd",
    "assertion",
    "verifier",
    "apikey",
    "api_key",
    "credentials",
    "authorization",
];

/// Whether the values of the parameter, field or header `key` are secrets.
/// Case and `-`/`_` do not matter.
pub(crate) fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS
        .iter()
        .any(|k| k.len() == key.len() && key_ends_with(key, k))
        || SECRET_KEY_ENDINGS.iter().any(|e| key_ends_with(key, e))
}

/// Extra request parameters for `Debug`: their names, never their values.
/// Callers pass anything through `param(..)` (a subject, an assertion, a
/// secret a server wants in the body), and which names hold secrets is
/// not knowable, so no value is shown.
pub(crate) struct ParamNames<'a>(pub(crate) &'a [(String, String)]);

impl std::fmt::Debug for ParamNames<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        for (name, _) in self.0 {
            list.entry(&format_args!("{name}=[redacted]"));
        }
        list.finish()
    }
}

/// Whether `key` ends with `ending` (written in lower case with `_`),
/// whatever the case and `-`/`_` of `key`.
fn key_ends_with(key: &str, ending: &str) -> bool {
    let key = key.as_bytes();
    key.len() >= ending.len()
        && key[key.len() - ending.len()..]
            .iter()
            .zip(ending.bytes())
            .all(|(&k, e)| k.to_ascii_lowercase() == e || (k == b'-' && e == b'_'))
}

/// The byte ranges of the values of secret keys in `text`: `key=value`,
/// `key: value`, `"key": "value"`, `key => value`, values quoted or not.
fn secret_values(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let is_key_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !is_key_byte(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_key_byte(bytes[i]) {
            i += 1;
        }
        let key = &text[start..i];
        if is_secret_key(key) {
            let authorization = key_ends_with(key, "authorization");
            if let Some(value) = value_after(bytes, i, authorization) {
                // Keys inside a secret value are part of it.
                i = value.end;
                ranges.push(value);
            }
        }
    }
    ranges
}

/// The value after a key that ends at `i`, if a separator follows it. For an
/// `authorization` key, the scheme (`Basic`, `Bearer`) stays visible.
fn value_after(bytes: &[u8], mut i: usize, authorization: bool) -> Option<Range<usize>> {
    let at = |i: usize| bytes.get(i).copied();
    let skip_spaces = |mut i: usize| {
        while at(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        i
    };
    // The key's closing quote (`"key"`, or `\"key\"` inside a JSON string).
    if at(i) == Some(b'\\') && at(i + 1) == Some(b'"') {
        i += 2;
    } else if matches!(at(i), Some(b'"' | b'\'')) {
        i += 1;
    }
    i = skip_spaces(i);
    match at(i) {
        Some(b':') => i += 1,
        Some(b'=') => i += if at(i + 1) == Some(b'>') { 2 } else { 1 },
        _ => return None,
    }
    i = skip_spaces(i);
    let quote = match at(i) {
        Some(b'\\') if at(i + 1) == Some(b'"') => {
            i += 2;
            Some(b'\\')
        }
        Some(q @ (b'"' | b'\'')) => {
            i += 1;
            Some(q)
        }
        _ => None,
    };
    if authorization {
        let scheme = bytes[i..]
            .iter()
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        if scheme > 0 && at(i + scheme) == Some(b' ') {
            i = skip_spaces(i + scheme);
        }
    }
    let start = i;
    match quote {
        // A quoted value runs to its closing quote, escaped quotes included;
        // one quoted as `\"` inside a JSON string, to the next `\` or `"`.
        Some(b'\\') => {
            while at(i).is_some_and(|b| b != b'\\' && b != b'"') {
                i += 1;
            }
        }
        Some(q) => {
            while at(i).is_some_and(|b| b != q) {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
        }
        // A JSON object or array runs to its closing bracket.
        None if matches!(at(i), Some(b'{' | b'[')) => i = end_of_nested(bytes, i),
        None => {
            while at(i).is_some_and(|b| {
                !b.is_ascii_whitespace() && !b.is_ascii_control() && !b"&,;}])<>\"'".contains(&b)
            }) {
                i += 1;
            }
        }
    }
    let end = i.min(bytes.len());
    (end > start).then_some(start..end)
}

/// Where the bracketed JSON value that opens at `i` ends (or the text does).
fn end_of_nested(bytes: &[u8], mut i: usize) -> usize {
    let (mut depth, mut in_string) = (0usize, false);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'{' | b'[' if !in_string => depth += 1,
            b'}' | b']' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

/// `text` with every range (on char boundaries) replaced by the placeholder;
/// overlapping ranges are merged first.
fn replace(text: &str, mut ranges: Vec<Range<usize>>) -> String {
    ranges.sort_unstable_by_key(|r| r.start);
    let mut out = String::with_capacity(text.len());
    let mut shown_up_to = 0;
    for range in ranges {
        if range.start >= shown_up_to {
            out.push_str(&text[shown_up_to..range.start]);
            out.push_str(PLACEHOLDER);
        } else if range.end <= shown_up_to {
            continue;
        }
        shown_up_to = range.end;
    }
    out.push_str(&text[shown_up_to..]);
    out
}

/// Characters that would end or reorder a log line: C0/C1 controls, the
/// Unicode line and paragraph separators, and bidi overrides.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with [`needs_escape`] characters written as Rust escapes (`\n`,
/// `\u{1b}`), cut to at most `max` characters, the last one `…` if cut.
/// Applying it twice changes nothing.
fn escape_and_cap(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut shown = 0;
    // How much of `out` fits in `max - 1` characters, room for the `…`.
    let mut fits = 0;
    for c in text.chars() {
        let start = out.len();
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
        shown += out[start..].chars().count();
        if shown > max {
            out.truncate(fits);
            out.push('…');
            return out;
        }
        if shown < max {
            fits = out.len();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str) -> String {
        server_text(text, &[])
    }

    #[test]
    fn error_texts_lose_the_credentials_of_every_url_in_them() {
        let cases = [
            (
                "error sending request for url (https://idp.example/token?subscription-key=k3y)",
                "error sending request for url (https://idp.example/token?[redacted])",
            ),
            (
                "error sending request for url (http://user:pa55@127.0.0.1:9/token?a=1#f): connection refused",
                "error sending request for url (http://[redacted]@127.0.0.1:9/token?[redacted]): connection refused",
            ),
            (
                "redirect to https://a.example/x?k=1 then \"https://b.example/?k=2\"",
                "redirect to https://a.example/x?[redacted] then \"https://b.example/?[redacted]\"",
            ),
            // Nothing to hide: unchanged.
            (
                "tcp connect error: Connection refused (os error 111)",
                "tcp connect error: Connection refused (os error 111)",
            ),
            ("https://idp.example/token", "https://idp.example/token"),
            ("https://idp.example/token?", "https://idp.example/token?"),
            ("://", "://"),
            // What server_text hides, and log forging, as for server texts.
            ("client_secret=s3cr3t\nINFO forged", "client_secret=[redacted]\\nINFO forged"),
        ];
        for (text, expected) in cases {
            assert_eq!(error_text(text, &[]), expected, "{text}");
        }
        assert_eq!(
            error_text("sent s3cr3t back", &["s3cr3t"]),
            "sent [redacted] back"
        );
    }

    #[test]
    fn urls_lose_user_info_and_query() {
        assert_eq!(
            url("https://user:pw@auth.example/token?key=k#f"),
            "https://[redacted]@auth.example/token?[redacted]"
        );
        assert_eq!(url("http://127.0.0.1:8/t"), "http://127.0.0.1:8/t");
        assert_eq!(url("a@b"), "[redacted]@b");
        assert_eq!(url("é://ü@"), "é://[redacted]@");
    }

    #[test]
    fn values_of_secret_keys_are_hidden_in_every_shape() {
        for (text, expected) in [
            (
                r#"{"access_token": "abc.def", "refresh_token":"r1","x":1}"#,
                r#"{"access_token": "[redacted]", "refresh_token":"[redacted]","x":1}"#,
            ),
            (
                "access_token=zzz&token_type=bearer",
                "access_token=[redacted]&token_type=bearer",
            ),
            (
                "POST /token\r\nAuthorization: Basic aWQ6c2VjcmV0\r\nhost: x",
                r"POST /token\r\nAuthorization: Basic [redacted]\r\nhost: x",
            ),
            (
                r#"{"client_secret":"p@ss w0rd \" tail","error_code":"invalid_grant"}"#,
                r#"{"client_secret":"[redacted]","error_code":"invalid_grant"}"#,
            ),
            (
                "grant_type=authorization_code&code=AC&state=S&Password=hunter2",
                "grant_type=authorization_code&code=[redacted]&state=[redacted]&Password=[redacted]",
            ),
            (
                r#"{"body":"{\"refresh_token\":\"RT\"}"}"#,
                r#"{"body":"{\"refresh_token\":\"[redacted]\"}"}"#,
            ),
            (
                r#"{"subject_token": {"value": "ST", "kind": 1}, "n": 2}"#,
                r#"{"subject_token": [redacted], "n": 2}"#,
            ),
            ("x-api-key => 'K'; device_code: DC", "x-api-key => '[redacted]'; device_code: [redacted]"),
            // Words, not keys: nothing follows them as a value.
            ("the token expired; codes differ", "the token expired; codes differ"),
        ] {
            assert_eq!(shown(text), expected, "{text}");
        }
    }

    #[test]
    fn secret_keys_by_name_and_ending() {
        // Every RFC and OIDC secret parameter is checked end to end in
        // tests/security.rs; here, the spellings and endings around them.
        for key in [
            "Refresh-Token",
            "x-csrf-token",
            "Authorization",
            "proxy-authorization",
            "x_api_key",
            "apiKey",
            "client_credentials",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in [
            "error",
            "error_code",
            "token_type",
            "expires_in",
            "scope",
            "codes",
            "grant_type",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn secrets_the_client_sent_are_hidden_wherever_they_appear() {
        let text = "refresh token RT-1 of client id:CS-2 (RT-1) is revoked";
        assert_eq!(
            server_text(text, &["RT-1", "CS-2", ""]),
            "refresh token [redacted] of client id:[redacted] ([redacted]) is revoked"
        );
        // A secret inside the placeholder or overlapping another is not re-cut.
        assert_eq!(
            server_text("xabcdx", &["abc", "bcd", "act"]),
            "x[redacted]x"
        );
    }

    #[test]
    fn control_characters_are_escaped_and_texts_capped() {
        assert_eq!(
            shown("bad\n2026 INFO forged\r\u{1b}[2J\u{2028}\u{202e}é"),
            r"bad\n2026 INFO forged\r\u{1b}[2J\u{2028}\u{202e}é"
        );
        let long = "é".repeat(10_000);
        let capped = shown(&long);
        assert_eq!(capped.chars().count(), MAX_SERVER_TEXT_CHARS);
        assert!(capped.ends_with('…'));
        assert_eq!(shown(&capped), capped, "idempotent");
        let exact = "x".repeat(MAX_SERVER_TEXT_CHARS);
        assert_eq!(shown(&exact), exact);
        // An escape is never cut in half.
        let newlines = "\n".repeat(MAX_SERVER_TEXT_CHARS);
        assert!(shown(&newlines).trim_end_matches('…').ends_with(r"\n"));
    }

    #[test]
    fn excerpts_of_any_bytes_never_panic() {
        let e = excerpt(
            "access_token=é_id_token=ü&refresh_token=x,id_token=\"ß".as_bytes(),
            &[],
        );
        assert!(
            !e.contains('é') && !e.contains('ü') && !e.contains('ß'),
            "{e}"
        );
        let _ = excerpt(
            &[0xff, b'c', b'o', b'd', b'e', b'=', 0xfe, b'"', b'\\'],
            &["\u{fffd}"],
        );
    }

    #[test]
    fn parameters_show_their_names_and_never_their_values() {
        let params = [
            ("subject".to_owned(), "wks_1".to_owned()),
            ("client_secret".to_owned(), "hunter2".to_owned()),
        ];
        let shown = format!("{:?}", ParamNames(&params));
        assert_eq!(shown, "[subject=[redacted], client_secret=[redacted]]");
    }
}
