//! The parameters a grant sends besides its own: scopes, audiences,
//! resource indicators and anything else the server wants.

use std::fmt;

use serde_json::Value;

use crate::error::TokenError;
use crate::redact::ParamNames;

/// Merges `from` into `into`: objects key by key, anything else replaced.
fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                merge(into.entry(key).or_insert(Value::Null), value);
            }
        }
        (into, from) => *into = from,
    }
}

/// What [`ClientCredentials`](crate::oauth2::ClientCredentials),
/// [`JwtBearer`](crate::oauth2::JwtBearer) and
/// [`TokenExchange`](crate::oauth2::TokenExchange) send after their grant's own
/// parameters, always in this order: `scope` (space-separated, once),
/// each `audience`, each `resource` (RFC 8707), `claims` if any, then the
/// rest as given.
#[derive(Clone, Default)]
pub(crate) struct GrantParams {
    /// Space-separated, as sent.
    scope: String,
    audiences: Vec<String>,
    resources: Vec<String>,
    others: Vec<(String, String)>,
    /// Client capabilities (Microsoft Entra's `cp1`: "I answer claims
    /// challenges"), sent as claims on every request.
    capabilities: Vec<String>,
}

impl GrantParams {
    pub(crate) fn add_scope(&mut self, scope: impl Into<String>) {
        if !self.scope.is_empty() {
            self.scope.push(' ');
        }
        self.scope.push_str(&scope.into());
    }

    pub(crate) fn add_audience(&mut self, audience: impl Into<String>) {
        self.audiences.push(audience.into());
    }

    pub(crate) fn add_resource(&mut self, resource: impl Into<String>) {
        self.resources.push(resource.into());
    }

    pub(crate) fn add(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.others.push((key.into(), value.into()));
    }

    pub(crate) fn add_capability(&mut self, capability: impl Into<String>) {
        self.capabilities.push(capability.into());
    }

    /// The `claims` parameter to send: the client's capabilities
    /// (`{"access_token":{"xms_cc":{"values":[…]}}}`) merged with the claims
    /// a challenge asked for; `None` if neither.
    pub(crate) fn claims(&self, asked: Option<&str>) -> Result<Option<String>, TokenError> {
        let mut merged = match asked {
            Some(json) => serde_json::from_str::<Value>(json).map_err(|_| {
                TokenError::permanent("the claims a server's challenge asked for are not JSON")
            })?,
            None if self.capabilities.is_empty() => return Ok(None),
            None => Value::Object(Default::default()),
        };
        if !self.capabilities.is_empty() {
            let capabilities = serde_json::json!({
                "access_token": { "xms_cc": { "values": self.capabilities } }
            });
            merge(&mut merged, capabilities);
        }
        Ok(Some(merged.to_string()))
    }

    /// The `scope` to send when a challenge asked for `asked`: what the grant
    /// asks for anyway, and the challenge's scopes not already in it.
    pub(crate) fn scope_with(&self, asked: &str) -> String {
        let mut scope = self.scope.clone();
        for wanted in asked.split_ascii_whitespace() {
            if !scope.split_ascii_whitespace().any(|have| have == wanted) {
                if !scope.is_empty() {
                    scope.push(' ');
                }
                scope.push_str(wanted);
            }
        }
        scope
    }

    /// Appends the parameters, with what a challenge asked for (`claims`
    /// already merged, a wider `scope`) in place of the grant's own.
    pub(crate) fn append_asking<'a>(
        &'a self,
        params: &mut Vec<(&'a str, &'a str)>,
        scope: Option<&'a str>,
        claims: Option<&'a str>,
    ) {
        match scope {
            Some(scope) => params.push(("scope", scope)),
            None if !self.scope.is_empty() => params.push(("scope", &self.scope)),
            None => {}
        }
        params.extend(self.audiences.iter().map(|a| ("audience", a.as_str())));
        params.extend(self.resources.iter().map(|r| ("resource", r.as_str())));
        if let Some(claims) = claims {
            params.push(("claims", claims));
        }
        params.extend(self.others.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }

    /// Appends these parameters to a grant's own, borrowed.
    pub(crate) fn append_to<'a>(&'a self, params: &mut Vec<(&'a str, &'a str)>) {
        self.append_asking(params, None, None);
    }
}

/// The setters of what a grant sends besides its own parameters, written
/// once for every grant: `grant_setters!(params);` in a grant's `impl`, where
/// `params` is its [`GrantParams`] field.
macro_rules! grant_setters {
    ($params:ident) => {
        /// Adds a scope; scopes are sent space-separated in one `scope`
        /// parameter.
        pub fn scope(mut self, scope: impl Into<String>) -> Self {
            self.$params.add_scope(scope);
            self
        }

        /// Adds an `audience`: the logical name of the service the token is
        /// for (RFC 8693 §2.1; Auth0-style APIs such as Blooma's want one).
        /// May be given more than once: each is sent.
        pub fn audience(mut self, audience: impl Into<String>) -> Self {
            self.$params.add_audience(audience);
            self
        }

        /// Adds a `resource` indicator (RFC 8707): the URI of the service
        /// the token is for. May be given more than once: each is sent.
        pub fn resource(mut self, resource: impl Into<String>) -> Self {
            self.$params.add_resource(resource);
            self
        }

        /// Adds any other parameter (`subject`, `redirect_uri`, …), sent
        /// after the others, in the order given. `Debug` shows its name,
        /// never its value.
        pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
            self.$params.add(key, value);
            self
        }
    };
}
pub(crate) use grant_setters;

/// Scopes, audiences and resources name what a token is for; the other
/// parameters' values may be anything, so only their names show.
impl fmt::Debug for GrantParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantParams")
            .field("scope", &self.scope)
            .field("audiences", &self.audiences)
            .field("resources", &self.resources)
            .field("others", &ParamNames(&self.others))
            .field("capabilities", &self.capabilities)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::GrantParams;

    #[test]
    fn claims_merge_capabilities_with_what_a_challenge_asked_for() {
        let mut with_cp1 = GrantParams::default();
        with_cp1.add_capability("cp1");
        let none = GrantParams::default();
        let asked = r#"{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}"#;
        let cases = [
            (&none, None, None),
            (&none, Some(asked), Some(asked.to_owned())),
            (
                &with_cp1,
                None,
                Some(r#"{"access_token":{"xms_cc":{"values":["cp1"]}}}"#.to_owned()),
            ),
            (
                &with_cp1,
                Some(asked),
                Some(
                    r#"{"access_token":{"nbf":{"essential":true,"value":"1700000000"},"xms_cc":{"values":["cp1"]}}}"#
                        .to_owned(),
                ),
            ),
        ];
        for (params, asked, want) in cases {
            assert_eq!(params.claims(asked).unwrap(), want, "{asked:?}");
        }
        assert!(none.claims(Some("not json")).is_err());
    }

    #[test]
    fn a_step_up_adds_the_scopes_not_asked_for_yet() {
        let mut params = GrantParams::default();
        params.add_scope("read write");
        assert_eq!(params.scope_with("write admin"), "read write admin");
        assert_eq!(GrantParams::default().scope_with("admin"), "admin");
    }

    #[test]
    fn parameters_follow_the_grants_own_in_a_fixed_order() {
        let mut extra = GrantParams::default();
        extra.add("subject", "wks_1");
        extra.add_resource("urn:one");
        extra.add_scope("a");
        extra.add_audience("first");
        extra.add_audience("second");
        extra.add_scope("b");
        extra.add_resource("urn:two");
        let mut params = vec![("grant_type", "client_credentials")];
        extra.append_to(&mut params);
        assert_eq!(
            params,
            [
                ("grant_type", "client_credentials"),
                ("scope", "a b"),
                ("audience", "first"),
                ("audience", "second"),
                ("resource", "urn:one"),
                ("resource", "urn:two"),
                ("subject", "wks_1"),
            ]
        );
    }

    #[test]
    fn nothing_is_sent_for_what_was_not_given() {
        let none = GrantParams::default();
        let mut params = vec![("grant_type", "x")];
        none.append_to(&mut params);
        assert_eq!(params, [("grant_type", "x")]);
    }

    #[test]
    fn debug_never_shows_the_values_of_other_parameters() {
        let mut params = GrantParams::default();
        params.add_scope("reports:read");
        params.add("client_assertion", "eyJ.secret.sig");
        let shown = format!("{params:?}");
        assert!(shown.contains("reports:read") && shown.contains("client_assertion"));
        assert!(!shown.contains("eyJ.secret.sig"), "{shown}");
    }
}
