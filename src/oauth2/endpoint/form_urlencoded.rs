//! The `application/x-www-form-urlencoded` byte serializer (WHATWG URL
//! standard), for request bodies, authorization URLs and Basic credentials.

/// How a space is written by [`encode_into`].
#[derive(Clone, Copy)]
pub(crate) enum Space {
    /// `+`, as form bodies and queries do.
    Plus,
    /// `%20`: for HTTP Basic credentials, where servers disagree on `+`
    /// (every server tried accepts `%20`).
    Percent,
}

/// Appends `value` form-encoded: ASCII alphanumerics and `*-._` stay,
/// everything else is percent-encoded byte by byte.
pub(crate) fn encode_into(out: &mut String, value: &str, space: Space) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_bytes_are_percent_encoded() {
        let mut out = String::new();
        encode_into(&mut out, "p@ss w0rd:+/%&=?~", Space::Plus);
        assert_eq!(out, "p%40ss+w0rd%3A%2B%2F%25%26%3D%3F%7E");
        let mut out = String::new();
        encode_into(&mut out, "a bé", Space::Percent);
        assert_eq!(out, "a%20b%C3%A9");
    }
}
