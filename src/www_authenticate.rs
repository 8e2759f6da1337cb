//! A tolerant parser for `WWW-Authenticate` challenges (RFC 9110 §11.6.1).
//!
//! Servers send one or more challenges, in one header or several:
//! `Basic realm="api", Bearer realm="api", error="invalid_token"`. The parser
//! reads bytes, not `str`: quoted values may hold any octet but controls
//! (RFC 9110 §5.6.4 allows obs-text, and servers send Latin-1 realms and UTF-8
//! descriptions), and such a value must not hide the challenge around it. It
//! never panics, whatever the bytes; what it cannot make sense of it skips.

/// One authentication challenge: a scheme with its parameters. A token68
/// (`Negotiate abc==`) is read past but not kept: no decision here needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// The scheme as sent (compare with [`Challenge::is_scheme`], which ignores case).
    scheme: String,
    /// Parameters in order; names lowercased, values unquoted, as sent.
    params: Vec<(String, Vec<u8>)>,
}

impl Challenge {
    /// The scheme as sent.
    pub(crate) fn scheme(&self) -> &str {
        &self.scheme
    }

    /// `true` if the scheme is `scheme`, ignoring ASCII case.
    pub(crate) fn is_scheme(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }

    /// The value of the first parameter named `name`, ignoring ASCII case.
    pub(crate) fn param(&self, name: &str) -> Option<&[u8]> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// Parses every challenge in one `WWW-Authenticate` header value.
pub(crate) fn parse(input: &[u8]) -> Vec<Challenge> {
    let mut parser = Parser { s: input, i: 0 };
    let mut challenges = Vec::new();
    loop {
        parser.skip_separators();
        if parser.at_end() {
            break;
        }
        let Some(scheme) = parser.token() else {
            // Not a scheme: skip this list element.
            parser.skip_element();
            continue;
        };
        let mut challenge = Challenge {
            scheme: scheme.to_owned(),
            params: Vec::new(),
        };
        parser.skip_spaces();
        if !parser.looks_like_param() && parser.skip_token68() {
            challenges.push(challenge);
            continue;
        }
        while parser.looks_like_param() {
            let name = parser.token().unwrap_or_default().to_ascii_lowercase();
            parser.skip_spaces();
            parser.i += 1; // '='
            parser.skip_spaces();
            let value = if parser.peek() == Some(b'"') {
                parser.quoted_string()
            } else {
                parser.token().unwrap_or_default().as_bytes().to_vec()
            };
            challenge.params.push((name, value));
            parser.skip_spaces();
            match parser.peek() {
                Some(b',') => {
                    let after_comma = parser.i + 1;
                    parser.i = after_comma;
                    parser.skip_separators();
                    if !parser.looks_like_param() {
                        // The next element is a new challenge (or nothing).
                        parser.i = after_comma;
                        break;
                    }
                }
                None => break,
                Some(_) => {
                    // Garbage after a parameter: skip to the next element.
                    parser.skip_element();
                    break;
                }
            }
        }
        challenges.push(challenge);
    }
    challenges
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

impl<'a> Parser<'a> {
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }

    /// Skips to just past the next comma that is not inside a quoted string.
    fn skip_element(&mut self) {
        let mut quoted = false;
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'\\' if quoted => self.i += 1,
                b'"' => quoted = !quoted,
                b',' if !quoted => return,
                _ => {}
            }
        }
    }

    fn token(&mut self) -> Option<&'a str> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        // tchars are ASCII, so the slice is valid UTF-8.
        (self.i > start).then(|| std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default())
    }

    /// Skips a token68 that stands alone (followed by spaces, a comma or the
    /// end); `false` if there is none.
    fn skip_token68(&mut self) -> bool {
        let start = self.i;
        let mut end = start;
        while self.s.get(end).copied().is_some_and(is_token68_char) {
            end += 1;
        }
        if end == start {
            return false;
        }
        while self.s.get(end) == Some(&b'=') {
            end += 1;
        }
        let mut after = end;
        while matches!(self.s.get(after), Some(b' ' | b'\t')) {
            after += 1;
        }
        if !matches!(self.s.get(after), None | Some(b',')) {
            return false;
        }
        self.i = end;
        true
    }

    /// `token BWS "="` (and not `token==`, which is token68 padding).
    fn looks_like_param(&self) -> bool {
        let mut j = self.i;
        while self.s.get(j).copied().is_some_and(is_tchar) {
            j += 1;
        }
        if j == self.i {
            return false;
        }
        while matches!(self.s.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        self.s.get(j) == Some(&b'=') && self.s.get(j + 1) != Some(&b'=')
    }

    /// A quoted string, unescaped; an unterminated one runs to the end.
    fn quoted_string(&mut self) -> Vec<u8> {
        self.i += 1; // opening quote
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(escaped) = self.peek() {
                        out.push(escaped);
                        self.i += 1;
                    }
                }
                _ => out.push(b),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The value of `name` in the `index`th challenge, as text.
    fn param<'a>(challenges: &'a [Challenge], index: usize, name: &str) -> Option<&'a str> {
        challenges[index]
            .param(name)
            .map(|v| std::str::from_utf8(v).unwrap())
    }

    #[test]
    fn names_and_schemes_ignore_case() {
        let c =
            parse(br#"Basic realm="x", Bearer error="invalid_token", error_description="expired""#);
        assert_eq!(c.len(), 2);
        assert!(c[1].is_scheme("bearer"));
        assert_eq!(param(&c, 1, "error"), Some("invalid_token"));
        assert_eq!(param(&c, 1, "ERROR_DESCRIPTION"), Some("expired"));
    }

    #[test]
    fn parses_rfc_6750_examples() {
        let c = parse(br#"Bearer realm="example""#);
        assert_eq!(c.len(), 1);
        assert_eq!(param(&c, 0, "realm"), Some("example"));

        let c = parse(
            br#"Bearer realm="example", error="invalid_token", error_description="The access token expired""#,
        );
        assert_eq!(param(&c, 0, "error"), Some("invalid_token"));
        assert_eq!(
            param(&c, 0, "error_description"),
            Some("The access token expired")
        );
    }

    #[test]
    fn separates_challenges_and_token68() {
        let c = parse(
            br#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple""#,
        );
        assert_eq!(c.len(), 2);
        assert_eq!(param(&c, 0, "title"), Some(r#"Login to "apps""#));
        assert_eq!(param(&c, 0, "type"), Some("1"));
        assert!(c[1].is_scheme("basic"));

        let c = parse(b"Negotiate abc+/def==, Bearer");
        assert_eq!(c.len(), 2);
        assert!(c[0].is_scheme("negotiate") && c[0].params.is_empty());
        assert!(c[1].is_scheme("Bearer"));
        assert!(c[1].params.is_empty());
    }

    #[test]
    fn values_that_are_not_ascii_are_kept_as_sent() {
        /// A header value, the scheme of each challenge in it, and a
        /// parameter (name, value) of the last one.
        type Case = (
            &'static [u8],
            &'static [&'static str],
            (&'static str, &'static [u8]),
        );
        let cases: &[Case] = &[
            (
                b"Basic realm=\"caf\xe9\"",
                &["Basic"],
                ("realm", b"caf\xe9"),
            ),
            (
                "Bearer error=\"insufficient_scope\", error_description=\"accès refusé\""
                    .as_bytes(),
                &["Bearer"],
                ("error_description", "accès refusé".as_bytes()),
            ),
            (
                b"Basic realm=\"\xff\\\"\xfe\", Bearer error=invalid_token",
                &["Basic", "Bearer"],
                ("error", b"invalid_token"),
            ),
        ];
        for (header, schemes, (name, value)) in cases {
            let c = parse(header);
            let got: Vec<&str> = c.iter().map(|c| c.scheme.as_str()).collect();
            assert_eq!(&got, schemes, "{header:?}");
            assert_eq!(c.last().unwrap().param(name), Some(*value), "{header:?}");
        }
    }

    #[test]
    fn garbage_does_not_panic() {
        for input in [
            &b""[..],
            b",,,",
            b"\"",
            b"=",
            b"Bearer error=",
            b"Bearer error=\"unterminated",
            b"Bearer ,=,\"\\",
            "é Bearer x=ü".as_bytes(),
            b"\xff\x00Bearer\x7f error=\"\x80",
        ] {
            let _ = parse(input);
        }
    }

    fn tchar_scheme() -> impl Strategy<Value = String> {
        "[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,10}"
    }

    /// A generated challenge: scheme and parameters (name, value, quoted?).
    type GenChallenge = (String, Vec<(String, Vec<u8>, bool)>);

    fn render(challenges: &[GenChallenge]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, (scheme, params)) in challenges.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(scheme.as_bytes());
            for (j, (name, value, quoted)) in params.iter().enumerate() {
                out.extend_from_slice(if j == 0 { b" " } else { b", " });
                out.extend_from_slice(name.as_bytes());
                out.push(b'=');
                if !quoted {
                    out.extend_from_slice(value);
                    continue;
                }
                out.push(b'"');
                for &b in value {
                    if b == b'\\' || b == b'"' {
                        out.push(b'\\');
                    }
                    out.push(b);
                }
                out.push(b'"');
            }
        }
        out
    }

    /// What may stand in a quoted value: visible ASCII, space, and obs-text.
    fn qdtext() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop_oneof![0x20u8..=0x7e, 0x80u8..=0xff], 0..20)
    }

    // Hostile headers (RELIABILITY.md, "Secrets"): the parser never panics,
    // and what it is given in the standard form it reads back exactly.
    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn parse_never_panics(input in prop::collection::vec(any::<u8>(), 0..120)) {
            let _ = parse(&input);
        }

        #[test]
        fn parse_never_panics_on_near_misses(input in r#"[A-Za-z0-9 ,="\\=/+\t~.-]{0,80}"#) {
            let _ = parse(input.as_bytes());
        }

        #[test]
        fn round_trips(
            challenges in prop::collection::vec(
                (
                    tchar_scheme(),
                    prop::collection::vec(
                        prop_oneof![
                            ("[a-z][a-z0-9_]{0,8}", qdtext(), Just(true)),
                            (
                                "[a-z][a-z0-9_]{0,8}",
                                "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}".prop_map(String::into_bytes),
                                Just(false),
                            ),
                        ],
                        0..4,
                    ),
                ),
                1..4,
            )
        ) {
            let header = render(&challenges);
            let parsed = parse(&header);
            prop_assert_eq!(parsed.len(), challenges.len(), "{:?}", header);
            for (got, (scheme, params)) in parsed.iter().zip(&challenges) {
                let expected = Challenge {
                    scheme: scheme.clone(),
                    params: params.iter().map(|(n, v, _)| (n.clone(), v.clone())).collect(),
                };
                prop_assert_eq!(got, &expected, "{:?}", header);
            }
        }
    }
}
