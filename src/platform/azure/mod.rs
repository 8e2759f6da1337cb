//! Azure: managed identity (IMDS on VMs and scale sets, the local token
//! service of App Service and Functions), workload identity (a federated
//! token file exchanged at Entra ID), and the default credential that
//! chooses among them.
//!
//! | where the workload runs | source | reads |
//! | --- | --- | --- |
//! | a VM or scale set (AKS nodes too) | [`ManagedIdentity`] (IMDS) | `AZURE_POD_IDENTITY_AUTHORITY_HOST` |
//! | App Service, Functions, Container Apps | [`ManagedIdentity`] (App Service) | `IDENTITY_ENDPOINT`, `IDENTITY_HEADER` |
//! | an AKS pod with workload identity; any token Entra trusts | [`WorkloadIdentity`] | `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_AUTHORITY_HOST` |
//! | any of these, or an application secret, chosen | [`DefaultCredential`] | the above, and `AZURE_CLIENT_SECRET` |
//!
//! Scopes are Entra's (`https://vault.azure.net/.default`); managed
//! identity asks for the resource they name. `examples/platform_azure.rs`
//! runs each against loopback stand-ins.

mod credential_choice;
mod default_credential;
mod managed_identity;
mod workload_identity;

pub use self::default_credential::{AzureCredential, DefaultCredential, DefaultCredentialBuilder};
pub use self::managed_identity::{
    ManagedIdentity, ManagedIdentityBuilder, ManagedIdentityId, ManagedIdentityKind,
};
pub use self::workload_identity::{WorkloadIdentity, WorkloadIdentityBuilder};
