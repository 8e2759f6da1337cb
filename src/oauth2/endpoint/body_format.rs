//! How token request parameters are encoded: a form, as RFC 6749 requires, or
//! a JSON object for servers that take one.

use serde_json::{Map, Value};

use super::form_urlencoded::{encode_into, Space};

/// How the request parameters are encoded.
///
/// ```
/// use tower_bearer::oauth2::{BodyFormat, TokenEndpoint};
///
/// assert_eq!(BodyFormat::default(), BodyFormat::Form);
/// // Blooma takes a JSON body.
/// let endpoint = TokenEndpoint::builder("https://login.blooma.ai/oauth/token")
///     .body_format(BodyFormat::Json)
///     .build()
///     .unwrap();
/// # let _ = endpoint;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/x-www-form-urlencoded`, as RFC 6749 requires.
    #[default]
    Form,
    /// `application/json`, a flat object of strings (repeated parameters
    /// become arrays).
    Json,
}

impl BodyFormat {
    /// The request body for `params`, and its content type.
    pub(crate) fn encode(self, params: &[(&str, &str)]) -> (String, &'static str) {
        match self {
            BodyFormat::Form => (form_body(params), "application/x-www-form-urlencoded"),
            BodyFormat::Json => (json_body(params), "application/json"),
        }
    }
}

/// `k1=v1&k2=v2`, form-encoded.
fn form_body(params: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (key, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_into(&mut out, key, Space::Plus);
        out.push('=');
        encode_into(&mut out, value, Space::Plus);
    }
    out
}

/// A JSON object of string values; a key given more than once (`resource`)
/// becomes an array.
fn json_body(params: &[(&str, &str)]) -> String {
    let mut map = Map::new();
    for (key, value) in params {
        let value = Value::String((*value).to_owned());
        match map.get_mut(*key) {
            None => {
                map.insert((*key).to_owned(), value);
            }
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
        }
    }
    Value::Object(map).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_are_form_encoded() {
        assert_eq!(form_body(&[("a", "1 2"), ("b", "é")]), "a=1+2&b=%C3%A9");
    }

    #[test]
    fn json_repeats_become_arrays() {
        let body = json_body(&[("resource", "a"), ("resource", "b"), ("x", "y")]);
        assert_eq!(body, r#"{"resource":["a","b"],"x":"y"}"#);
    }
}
