//! The parameters a grant sends besides its own: scopes, audiences,
//! resource indicators and anything else the server wants.

use std::fmt;

use crate::redact::ParamNames;

/// What [`ClientCredentials`](super::ClientCredentials),
/// [`JwtBearer`](super::JwtBearer) and
/// [`TokenExchange`](super::TokenExchange) send after their grant's own
/// parameters, always in this order: `scope` (space-separated, once),
/// each `audience`, each `resource` (RFC 8707), then the rest as given.
#[derive(Clone, Default)]
pub(crate) struct GrantParams {
    /// Space-separated, as sent.
    scope: String,
    audiences: Vec<String>,
    resources: Vec<String>,
    others: Vec<(String, String)>,
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

    /// Replaces every audience with this one (a grant that takes only one).
    pub(crate) fn set_audience(&mut self, audience: impl Into<String>) {
        self.audiences.clear();
        self.audiences.push(audience.into());
    }

    pub(crate) fn add_resource(&mut self, resource: impl Into<String>) {
        self.resources.push(resource.into());
    }

    pub(crate) fn add(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.others.push((key.into(), value.into()));
    }

    /// Appends these parameters to a grant's own, borrowed.
    pub(crate) fn append_to<'a>(&'a self, params: &mut Vec<(&'a str, &'a str)>) {
        if !self.scope.is_empty() {
            params.push(("scope", &self.scope));
        }
        params.extend(self.audiences.iter().map(|a| ("audience", a.as_str())));
        params.extend(self.resources.iter().map(|r| ("resource", r.as_str())));
        params.extend(self.others.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
}

/// Scopes, audiences and resources name what a token is for; the other
/// parameters' values may be anything, so only their names show.
impl fmt::Debug for GrantParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantParams")
            .field("scope", &self.scope)
            .field("audiences", &self.audiences)
            .field("resources", &self.resources)
            .field("others", &ParamNames(&self.others))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::GrantParams;

    #[test]
    fn parameters_follow_the_grants_own_in_a_fixed_order() {
        let mut extra = GrantParams::default();
        extra.add("subject", "wks_1");
        extra.add_resource("urn:one");
        extra.add_scope("a");
        extra.set_audience("first");
        extra.set_audience("second");
        extra.add_scope("b");
        extra.add_resource("urn:two");
        let mut params = vec![("grant_type", "client_credentials")];
        extra.append_to(&mut params);
        assert_eq!(
            params,
            [
                ("grant_type", "client_credentials"),
                ("scope", "a b"),
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
