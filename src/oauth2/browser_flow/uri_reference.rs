//! Where a URI reference's query and fragment are (RFC 3986 §3): the fragment
//! starts at the first `#`, the query at the first `?` before it. Neither
//! character may appear unencoded earlier, so this split is exact, not a
//! heuristic, for absolute URLs and for `path?query` references alike.

/// A URI reference cut at its `?` and `#`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UriReference<'a> {
    /// Scheme, authority and path: everything before the query.
    pub(crate) base: &'a str,
    /// The query without its `?`; `Some("")` for a bare `?`.
    pub(crate) query: Option<&'a str>,
    /// The fragment without its `#`; `Some("")` for a bare `#`.
    pub(crate) fragment: Option<&'a str>,
}

impl<'a> UriReference<'a> {
    pub(crate) fn split(uri: &'a str) -> Self {
        let (rest, fragment) = match uri.split_once('#') {
            Some((rest, fragment)) => (rest, Some(fragment)),
            None => (uri, None),
        };
        let (base, query) = match rest.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (rest, None),
        };
        Self {
            base,
            query,
            fragment,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_fragment_are_found_in_grammar_order() {
        let cases: &[(&str, &str, Option<&str>, Option<&str>)] = &[
            (
                "https://idp.example/auth",
                "https://idp.example/auth",
                None,
                None,
            ),
            (
                "https://idp.example/auth?a=1",
                "https://idp.example/auth",
                Some("a=1"),
                None,
            ),
            (
                "https://idp.example/auth#frag",
                "https://idp.example/auth",
                None,
                Some("frag"),
            ),
            (
                "https://idp.example/auth?a=1#frag",
                "https://idp.example/auth",
                Some("a=1"),
                Some("frag"),
            ),
            // A `?` inside the fragment belongs to the fragment.
            (
                "https://idp.example/auth#frag?x=1",
                "https://idp.example/auth",
                None,
                Some("frag?x=1"),
            ),
            // A `#` can't be in a query: the first one ends it.
            (
                "https://a.example/cb?code=1#state=2",
                "https://a.example/cb",
                Some("code=1"),
                Some("state=2"),
            ),
            (
                "https://idp.example/auth?",
                "https://idp.example/auth",
                Some(""),
                None,
            ),
            (
                "https://idp.example/auth#",
                "https://idp.example/auth",
                None,
                Some(""),
            ),
            (
                "/callback?code=1&state=2",
                "/callback",
                Some("code=1&state=2"),
                None,
            ),
            ("", "", None, None),
        ];
        for &(uri, base, query, fragment) in cases {
            assert_eq!(
                UriReference::split(uri),
                UriReference {
                    base,
                    query,
                    fragment
                },
                "{uri}"
            );
        }
    }
}
