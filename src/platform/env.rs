//! `Env`: the environment variables the platform sources read, injectable so
//! that tests and choosers never touch the process environment.

use std::collections::BTreeMap;
use std::fmt;

/// Every variable a source of [`platform`](super) reads; what
/// [`Env::from_process`] copies.
const NAMES: &[&str] = &[
    // Google
    "GCE_METADATA_HOST",
    "GOOGLE_APPLICATION_CREDENTIALS",
    // Azure
    "AZURE_AUTHORITY_HOST",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "AZURE_TENANT_ID",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    // GitHub Actions
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
];

/// The environment variables a platform source or chooser reads: a copy of
/// the process's ([`from_process`](Self::from_process)) or a map built in
/// code, so that a test can describe a platform without setting variables
/// that every other test of the process would see.
///
/// A variable set to the empty string counts as unset, as the platforms'
/// own SDKs treat it. `Debug` shows the names only: some values are secrets
/// (`IDENTITY_HEADER`, `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, `AZURE_CLIENT_SECRET`).
///
/// ```
/// use tower_bearer::platform::Env;
///
/// let env = Env::new()
///     .with("GCE_METADATA_HOST", "127.0.0.1:8080")
///     .with("IDENTITY_HEADER", "s3cr3t")
///     .with("AZURE_CLIENT_ID", "");
/// assert_eq!(env.var("GCE_METADATA_HOST"), Some("127.0.0.1:8080"));
/// assert_eq!(env.var("AZURE_CLIENT_ID"), None, "empty is unset");
/// assert!(!format!("{env:?}").contains("s3cr3t"));
///
/// // What the sources read by default: these variables of the process.
/// let process = Env::from_process();
/// # let _ = process;
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// No variable set.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the process's variables that the platform sources read
    /// (those of Google, Azure and GitHub Actions named in each source's
    /// documentation), taken now; variables that are not UTF-8 are left out.
    pub fn from_process() -> Self {
        NAMES
            .iter()
            .filter_map(|name| Some((*name, std::env::var(name).ok()?)))
            .collect()
    }

    /// Sets `name` to `value`.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// The value of `name`, or `None` if it is unset or empty.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Env {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self {
            vars: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: values include request tokens and client secrets.
        f.debug_set().entries(self.vars.keys()).finish()
    }
}
