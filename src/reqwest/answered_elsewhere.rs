//! Marking what reqwest's redirects bring back from another origin.

use crate::exchange::AnsweredElsewhere;

/// Marks `response` with [`AnsweredElsewhere`] if it came from another
/// origin than `sent_to` (reqwest followed a redirect there, and did not
/// send the token along).
pub(super) fn mark_if_elsewhere(response: &mut ::reqwest::Response, sent_to: &::reqwest::Url) {
    if !same_origin(response.url(), sent_to) {
        response.extensions_mut().insert(AnsweredElsewhere);
    }
}

fn same_origin(a: &::reqwest::Url, b: &::reqwest::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str()
            .zip(b.host_str())
            .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b))
        && a.port_or_known_default() == b.port_or_known_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let url = |s: &str| ::reqwest::Url::parse(s).unwrap();
        let cases = [
            ("http://127.0.0.1:8080/a", "http://127.0.0.1:8080/b?x", true),
            ("https://API.example/a", "https://api.example:443/", true),
            ("http://127.0.0.1:8080/a", "http://127.0.0.1:8081/a", false),
            ("http://127.0.0.1/a", "https://127.0.0.1/a", false),
            ("http://a.example/", "http://b.example/", false),
        ];
        for (a, b, same) in cases {
            assert_eq!(same_origin(&url(a), &url(b)), same, "{a} {b}");
        }
    }
}
