//! Encodings for token requests: form bodies, JSON bodies, HTTP Basic credentials.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::HeaderValue;

/// How a space is written by [`form_encode_into`].
#[derive(Clone, Copy)]
pub(crate) enum Space {
    /// `+`, as `application/x-www-form-urlencoded` bodies and queries do.
    Plus,
    /// `%20`: for HTTP Basic credentials, where servers disagree on `+`
    /// (every server tried accepts `%20`).
    Percent,
}

/// Appends `value` encoded as `application/x-www-form-urlencoded` (the WHATWG
/// byte serializer): ASCII alphanumerics and `*-._` stay, everything else is
/// percent-encoded byte by byte.
pub(crate) fn form_encode_into(out: &mut String, value: &str, space: Space) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' if matches!(space, Space::Plus) => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 0xf)] as char);
            }
        }
    }
}

/// `k1=v1&k2=v2`, form-encoded.
pub(crate) fn form_body(params: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (key, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        form_encode_into(&mut out, key, Space::Plus);
        out.push('=');
        form_encode_into(&mut out, value, Space::Plus);
    }
    out
}

/// A JSON object of string values; a key given more than once (`resource`)
/// becomes an array.
pub(crate) fn json_body(params: &[(&str, &str)]) -> String {
    let mut map = serde_json::Map::new();
    for (key, value) in params {
        let value = serde_json::Value::String((*value).to_owned());
        match map.get_mut(*key) {
            None => {
                map.insert((*key).to_owned(), value);
            }
            Some(serde_json::Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = serde_json::Value::Array(vec![first, value]);
            }
        }
    }
    serde_json::Value::Object(map).to_string()
}

/// `Basic base64(enc(id):enc(secret))` per RFC 6749 §2.3.1, marked sensitive.
pub(crate) fn basic_auth(client_id: &str, client_secret: &str) -> HeaderValue {
    let mut plain = String::new();
    form_encode_into(&mut plain, client_id, Space::Percent);
    plain.push(':');
    form_encode_into(&mut plain, client_secret, Space::Percent);
    let mut value = HeaderValue::try_from(format!("Basic {}", STANDARD.encode(plain)))
        .expect("base64 is a valid header value");
    value.set_sensitive(true);
    value
}

/// Compares two strings in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding() {
        let mut out = String::new();
        form_encode_into(&mut out, "p@ss w0rd:+/%&=?~", Space::Plus);
        assert_eq!(out, "p%40ss+w0rd%3A%2B%2F%25%26%3D%3F%7E");
        let mut out = String::new();
        form_encode_into(&mut out, "a b", Space::Percent);
        assert_eq!(out, "a%20b");
        assert_eq!(form_body(&[("a", "1 2"), ("b", "é")]), "a=1+2&b=%C3%A9");
    }

    #[test]
    fn json_repeats_become_arrays() {
        let body = json_body(&[("resource", "a"), ("resource", "b"), ("x", "y")]);
        assert_eq!(body, r#"{"resource":["a","b"],"x":"y"}"#);
    }

    #[test]
    fn basic() {
        let value = basic_auth("id", "p@ss w0rd:+/%&=?");
        assert!(value.is_sensitive());
        let b64 = value.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let plain = String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap();
        assert_eq!(plain, "id:p%40ss%20w0rd%3A%2B%2F%25%26%3D%3F");
    }

    #[test]
    fn ct_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
