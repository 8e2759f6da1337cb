//! What may be printed of secrets, URLs and what servers send: the one place
//! that decides what errors, `Debug` output and tracing events may show.

use std::fmt;

/// Placeholder printed wherever a secret would be.
pub(crate) struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
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
        Some(at) => format!("[redacted]@{}", &authority[at + 1..]),
        None => authority.to_owned(),
    };
    let tail = match tail.find(['?', '#']) {
        Some(q) => format!("{}?[redacted]", &tail[..q]),
        None => tail.to_owned(),
    };
    format!("{scheme}{authority}{tail}")
}

/// Keys whose values are never shown in an excerpt (matched as whole words).
const SENSITIVE_KEYS: [&str; 14] = [
    "access_token",
    "refresh_token",
    "id_token",
    "subject_token",
    "client_secret",
    "client_assertion",
    "assertion",
    "code_verifier",
    "code",
    "password",
    "apikey",
    "api_key",
    "state",
    // An error page that echoes the request shows `authorization: Basic
    // base64(id:secret)`: the client secret, merely encoded.
    "authorization",
];

/// The longest excerpt kept from an unexpected response.
const EXCERPT_CHARS: usize = 160;

/// A short, printable, secret-free start of a response body.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(4 * EXCERPT_CHARS)]);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    redact(&mut out);
    if out.chars().count() > EXCERPT_CHARS {
        out = out.chars().take(EXCERPT_CHARS).collect::<String>() + "…";
    }
    out
}

/// Replaces the value after each sensitive key (`"key": "value"` or `key=value`).
fn redact(text: &mut String) {
    let lower = text.to_ascii_lowercase();
    let mut ranges = Vec::new();
    for key in SENSITIVE_KEYS {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(key) {
            let key_start = from + pos;
            let mut i = key_start + key.len();
            from = i;
            let bytes = lower.as_bytes();
            let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
            if key_start > 0 && is_word(bytes[key_start - 1])
                || bytes.get(i).is_some_and(|b| is_word(*b))
            {
                continue; // part of a longer word (`error_code`, `codes`)
            }
            let mut quote = None;
            while i < bytes.len() && matches!(bytes[i], b'"' | b'\'' | b' ' | b':' | b'=') {
                if matches!(bytes[i], b'"' | b'\'') {
                    quote = Some(bytes[i]);
                }
                i += 1;
            }
            // `authorization: Basic <credentials>`: the scheme may show, the
            // credentials after it may not.
            let scheme_end = i + bytes[i..]
                .iter()
                .take_while(|b| b.is_ascii_alphabetic())
                .count();
            if key == "authorization" && bytes.get(scheme_end) == Some(&b' ') {
                i = scheme_end;
                while i < bytes.len() && bytes[i] == b' ' {
                    i += 1;
                }
            }
            let start = i;
            match quote {
                // A quoted value runs to its closing quote, spaces and escaped
                // quotes included.
                Some(q) => {
                    while i < bytes.len() && bytes[i] != q {
                        i += if bytes[i] == b'\\' { 2 } else { 1 };
                    }
                    i = i.min(bytes.len());
                }
                None => {
                    while i < bytes.len() && !matches!(bytes[i], b'&' | b',' | b'}' | b' ') {
                        i += 1;
                    }
                }
            }
            if i > start {
                ranges.push((start, i));
            }
        }
    }
    ranges.sort_unstable();
    // Merge overlaps (a value may contain another key) so that every
    // replacement works on untouched, char-aligned (ASCII-delimited) indices.
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    for (start, end) in merged.into_iter().rev() {
        text.replace_range(start..end, "[redacted]");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn excerpts_hide_tokens() {
        let e = excerpt(br#"{"access_token": "abc.def", "refresh_token":"r1","x":1}"#);
        assert!(!e.contains("abc.def") && !e.contains("r1"), "{e}");
        assert!(e.contains("[redacted]"));
        let e = excerpt(b"access_token=zzz&token_type=bearer");
        assert!(!e.contains("zzz"), "{e}");
        let e = excerpt(b"<pre>POST /token\r\nAuthorization: Basic aWQ6c2VjcmV0\r\nhost: x</pre>");
        assert!(
            !e.contains("aWQ6c2VjcmV0") && e.contains("Basic [redacted]"),
            "{e}"
        );
        let long = "x".repeat(10_000);
        assert!(excerpt(long.as_bytes()).chars().count() <= EXCERPT_CHARS + 1);
    }

    #[test]
    fn quoted_values_are_hidden_whole_and_words_are_matched_whole() {
        let e = excerpt(br#"{"client_secret":"p@ss w0rd \" tail","error_code":"invalid_grant"}"#);
        assert!(!e.contains("w0rd") && !e.contains("tail"), "{e}");
        assert!(e.contains("invalid_grant"), "{e}");
        let e = excerpt(b"grant_type=authorization_code&code=AUTHCODE&state=CSRF&password=hunter2");
        for secret in ["AUTHCODE", "CSRF", "hunter2"] {
            assert!(!e.contains(secret), "{e}");
        }
        assert!(e.contains("authorization_code"), "{e}");
    }

    #[test]
    fn overlapping_keys_do_not_panic() {
        let e = excerpt("access_token=é_id_token=ü&refresh_token=x,id_token=\"ß\"".as_bytes());
        assert!(
            !e.contains('é') && !e.contains('ü') && !e.contains('ß'),
            "{e}"
        );
    }
}
