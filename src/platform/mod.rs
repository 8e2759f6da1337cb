//! Tokens from the platform a service runs on: the identity that Google
//! Cloud, Azure and GitHub Actions give a workload, as [`TokenSource`](crate::TokenSource)s,
//! so that the cache's single flight, refresh ahead, backoff and keyed and
//! fleet tiers apply to them as to any other source.
//!
//! | platform | source | reads |
//! | --- | --- | --- |
//! | Google Cloud (Compute Engine, GKE, Cloud Run, Functions, App Engine) | [`google::MetadataAccessToken`], [`google::MetadataIdToken`] | `GCE_METADATA_HOST` |
//! | outside Google Cloud, federated with it | [`google::ExternalAccount`] | a credential configuration file |
//! | Google, chosen from the environment | [`google::ApplicationDefault`] | `GOOGLE_APPLICATION_CREDENTIALS`, then the metadata server |
//! | Azure VMs and scale sets | [`azure::ManagedIdentity`] (IMDS) | `AZURE_POD_IDENTITY_AUTHORITY_HOST` |
//! | Azure App Service, Functions, Container Apps | [`azure::ManagedIdentity`] (App Service) | `IDENTITY_ENDPOINT`, `IDENTITY_HEADER` |
//! | AKS workload identity, or any federated token | [`azure::WorkloadIdentity`] | `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_AUTHORITY_HOST` |
//! | Azure, chosen from the environment | [`azure::DefaultCredential`] | the above, and `AZURE_CLIENT_SECRET` |
//! | a GitHub Actions job | [`github::ActionsIdToken`], as the subject of a [`TokenExchange`](crate::oauth2::TokenExchange) or a client assertion | `ACTIONS_ID_TOKEN_REQUEST_URL`, `ACTIONS_ID_TOKEN_REQUEST_TOKEN` |
//!
//! # The environment
//!
//! Sources and choosers read variables through an [`Env`]: the process's
//! ([`Env::from_process`], the default) or one built in code, so that a
//! test describes a platform without touching the process environment.
//! The choosers ([`google::ApplicationDefault`], [`azure::DefaultCredential`])
//! decide once, when built, and say what they chose and what they passed
//! over ([`Skipped`]).
//!
//! # Off the platform
//!
//! A metadata server that is not there fails fast, never a 30-second hang:
//! the default client of the metadata and managed-identity sources never
//! goes through a proxy and gives up connecting after **1 second** (a
//! refused connection fails at once), and every request to a platform
//! endpoint gives up after **5 seconds** (both can be set on each
//! builder). The failure is a transient [`PlatformError`] naming the source,
//! the URL and, for a chooser's fallback, everything passed over and why.
//!
//! # Failures the platforms document
//!
//! Azure's IMDS answers `429` and `5xx` under load and asks for retries
//! with backoff, and `404` or `410` while it updates or while a new
//! identity is being assigned: all transient, with the `Retry-After` the
//! answer carried, and `429` and `503` marked as the endpoint's own
//! overload ([`TokenError::endpoint_overloaded`](crate::TokenError::endpoint_overloaded)).
//! The cache's backoff does the retrying. Any other `4xx` is permanent.
//!
//! # Secrets
//!
//! Tokens, subject tokens, client assertions, `IDENTITY_HEADER` and the
//! GitHub request token never appear in `Debug`, `Display`, errors or
//! tracing events; [`Env`]'s `Debug` shows names only.

pub mod azure;
mod env;
mod error;
pub mod github;
pub mod google;
mod lifetime;
mod settings;
mod transport;

pub use self::env::Env;
pub use self::error::{Failure, PlatformError, SetupError, Skipped};
