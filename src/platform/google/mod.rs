//! Google Cloud: the metadata server's access and ID tokens, workload
//! identity federation, and the application default credentials that
//! choose among them (and a service-account key, feature `jwt`).
//!
//! | where the workload runs | source | reads |
//! | --- | --- | --- |
//! | Compute Engine, GKE, Cloud Run, Cloud Functions, App Engine | [`MetadataAccessToken`], [`MetadataIdToken`] (for Cloud Run and IAP audiences) | `GCE_METADATA_HOST` |
//! | anywhere with a platform token Google trusts (AKS, EKS, GitHub Actions, an OIDC or SAML provider) | [`ExternalAccount`] | a credential configuration file |
//! | anywhere, with a key file | [`GoogleServiceAccount`](crate::oauth2::GoogleServiceAccount) (feature `jwt`) | a key file |
//! | any of these, chosen | [`ApplicationDefault`] | `GOOGLE_APPLICATION_CREDENTIALS`, `GCE_METADATA_HOST` |
//!
//! `examples/platform_google.rs` runs each against loopback stand-ins.

mod application_default;
mod external_account;
mod metadata_access_token;
mod metadata_id_token;
mod metadata_server;
mod subject_token;

pub use self::application_default::{
    ApplicationDefault, ApplicationDefaultBuilder, GoogleCredential,
};
pub use self::external_account::{ExternalAccount, ExternalAccountBuilder};
pub use self::metadata_access_token::{MetadataAccessToken, MetadataAccessTokenBuilder};
pub use self::metadata_id_token::{MetadataIdToken, MetadataIdTokenBuilder};
