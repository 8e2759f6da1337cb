//! A tolerant parser for `WWW-Authenticate` challenges (RFC 9110 §11.6.1).
//!
//! Servers send one or more challenges, in one header or several:
//! `Basic realm="api", Bearer realm="api", error="invalid_token"`. The parser
//! never panics, whatever the bytes; what it cannot make sense of it skips.

/// One authentication challenge: a scheme with its parameters. A token68
/// (`Negotiate abc==`) is read past but not kept: no decision here needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// The scheme as sent (compare with [`Challenge::is_scheme`], which ignores case).
    scheme: String,
    /// Parameters in order; names lowercased, values unquoted.
    params: Vec<(String, String)>,
}

impl Challenge {
    /// `true` if the scheme is `scheme`, ignoring ASCII case.
    pub(crate) fn is_scheme(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }

    /// The value of the first parameter named `name`, ignoring ASCII case.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses every challenge in one `WWW-Authenticate` header value.
pub(crate) fn parse(input: &str) -> Vec<Challenge> {
    let mut parser = Parser {
        s: input.as_bytes(),
        i: 0,
    };
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
                parser.token().unwrap_or_default().to_owned()
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
    fn quoted_string(&mut self) -> String {
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
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_and_schemes_ignore_case() {
        let c =
            parse(r#"Basic realm="x", Bearer error="invalid_token", error_description="expired""#);
        assert_eq!(c.len(), 2);
        assert!(c[1].is_scheme("bearer"));
        assert_eq!(c[1].param("error"), Some("invalid_token"));
        assert_eq!(c[1].param("ERROR_DESCRIPTION"), Some("expired"));
    }

    #[test]
    fn parses_rfc_6750_examples() {
        let c = parse(r#"Bearer realm="example""#);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].param("realm"), Some("example"));

        let c = parse(
            r#"Bearer realm="example", error="invalid_token", error_description="The access token expired""#,
        );
        assert_eq!(c[0].param("error"), Some("invalid_token"));
        assert_eq!(
            c[0].param("error_description"),
            Some("The access token expired")
        );
    }

    #[test]
    fn separates_challenges_and_token68() {
        let c = parse(
            r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple""#,
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].param("title"), Some(r#"Login to "apps""#));
        assert_eq!(c[0].param("type"), Some("1"));
        assert!(c[1].is_scheme("basic"));

        let c = parse("Negotiate abc+/def==, Bearer");
        assert_eq!(c.len(), 2);
        assert!(c[0].is_scheme("negotiate") && c[0].params.is_empty());
        assert!(c[1].is_scheme("Bearer"));
        assert!(c[1].params.is_empty());
    }

    #[test]
    fn garbage_does_not_panic() {
        for input in [
            "",
            ",,,",
            "\"",
            "=",
            "Bearer error=",
            "Bearer error=\"unterminated",
            "Bearer ,=,\"\\",
            "é Bearer x=ü",
        ] {
            let _ = parse(input);
        }
    }

    fn tchar_scheme() -> impl Strategy<Value = String> {
        "[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,10}"
    }

    /// A generated challenge: scheme and parameters (name, value, quoted?).
    type GenChallenge = (String, Vec<(String, String, bool)>);

    fn render(challenges: &[GenChallenge]) -> String {
        challenges
            .iter()
            .map(|(scheme, params)| {
                let params: Vec<String> = params
                    .iter()
                    .map(|(name, value, quoted)| {
                        if *quoted {
                            let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
                            format!("{name}=\"{escaped}\"")
                        } else {
                            format!("{name}={value}")
                        }
                    })
                    .collect();
                if params.is_empty() {
                    scheme.clone()
                } else {
                    format!("{scheme} {}", params.join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    // Hostile headers (RELIABILITY.md, "Secrets"): the parser never panics,
    // and what it is given in the standard form it reads back exactly.
    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn parse_never_panics(input in any::<String>()) {
            let _ = parse(&input);
        }

        #[test]
        fn parse_never_panics_on_near_misses(input in r#"[A-Za-z0-9 ,="\\=/+\t~.-]{0,80}"#) {
            let _ = parse(&input);
        }

        #[test]
        fn round_trips(
            challenges in prop::collection::vec(
                (
                    tchar_scheme(),
                    prop::collection::vec(
                        prop_oneof![
                            ("[a-z][a-z0-9_]{0,8}", "[ -~]{0,20}", Just(true)),
                            ("[a-z][a-z0-9_]{0,8}", "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}", Just(false)),
                        ],
                        0..4,
                    ),
                ),
                1..4,
            )
        ) {
            let header = render(&challenges);
            let parsed = parse(&header);
            prop_assert_eq!(parsed.len(), challenges.len(), "{}", header);
            for (got, (scheme, params)) in parsed.iter().zip(&challenges) {
                let expected = Challenge {
                    scheme: scheme.clone(),
                    params: params.iter().map(|(n, v, _)| (n.clone(), v.clone())).collect(),
                };
                prop_assert_eq!(got, &expected, "{}", header);
            }
        }
    }
}
