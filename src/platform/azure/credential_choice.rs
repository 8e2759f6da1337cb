//! Which Azure credential the environment calls for, in the order of the
//! Azure SDKs' `DefaultAzureCredential`: a pure function of an [`Env`],
//! table-tested, that lists every candidate it passed over and why.

use std::path::PathBuf;

use super::managed_identity::DEFAULT_IMDS_HOST;
use super::workload_identity::DEFAULT_AUTHORITY_HOST;
use crate::platform::error::Skipped;
use crate::platform::Env;
use crate::secret::Secret;

/// The candidates' names in [`Skipped`] lists, in the chooser's order.
const ENVIRONMENT: &str = "environment";
const WORKLOAD_IDENTITY: &str = "workload identity";
const MANAGED_IDENTITY: &str = "managed identity";

/// What the environment says to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    ClientSecret {
        authority: String,
        tenant: String,
        client_id: String,
        secret: Secret,
    },
    WorkloadIdentity {
        authority: String,
        tenant: String,
        client_id: String,
        file: PathBuf,
    },
    AppService {
        endpoint: String,
        header: Secret,
        client_id: Option<String>,
    },
    Imds {
        host: String,
        client_id: Option<String>,
    },
}

/// The Azure SDKs' order: an application secret in the environment, then
/// workload identity, then managed identity (App Service's endpoint when
/// its variables are set, else IMDS). Each candidate that does not apply
/// is listed with the reason; a managed-identity environment this crate
/// does not speak (Azure Arc, Service Fabric, Cloud Shell) stops the
/// search, since IMDS is not there either.
pub(crate) fn choose(env: &Env) -> Result<(Decision, Vec<Skipped>), Vec<Skipped>> {
    let mut skipped = Vec::new();
    let authority = env
        .var("AZURE_AUTHORITY_HOST")
        .unwrap_or(DEFAULT_AUTHORITY_HOST)
        .to_owned();
    let tenant = env.var("AZURE_TENANT_ID");
    let client_id = env.var("AZURE_CLIENT_ID");
    let unset = |set: &str, needed: &[&str]| {
        let missing: Vec<&str> = needed
            .iter()
            .copied()
            .filter(|name| env.var(name).is_none())
            .collect();
        let verb = if missing.len() > 1 { "are" } else { "is" };
        format!("{set} is set but {} {verb} not", missing.join(" and "))
    };

    match (env.var("AZURE_CLIENT_SECRET"), tenant, client_id) {
        (Some(secret), Some(tenant), Some(client_id)) => {
            let decision = Decision::ClientSecret {
                authority,
                tenant: tenant.to_owned(),
                client_id: client_id.to_owned(),
                secret: Secret::new(secret),
            };
            return Ok((decision, skipped));
        }
        (Some(_), ..) => skipped.push(Skipped::new(
            ENVIRONMENT,
            unset(
                "AZURE_CLIENT_SECRET",
                &["AZURE_TENANT_ID", "AZURE_CLIENT_ID"],
            ),
        )),
        (None, ..) if env.var("AZURE_CLIENT_CERTIFICATE_PATH").is_some() => {
            skipped.push(Skipped::new(
                ENVIRONMENT,
                "AZURE_CLIENT_CERTIFICATE_PATH is set: certificates are not read here \
                 (use oauth2's private_key_jwt with the certificate's key)",
            ));
        }
        (None, ..) => skipped.push(Skipped::new(ENVIRONMENT, "AZURE_CLIENT_SECRET is not set")),
    }

    match (env.var("AZURE_FEDERATED_TOKEN_FILE"), tenant, client_id) {
        (Some(file), Some(tenant), Some(client_id)) => {
            let decision = Decision::WorkloadIdentity {
                authority,
                tenant: tenant.to_owned(),
                client_id: client_id.to_owned(),
                file: PathBuf::from(file),
            };
            return Ok((decision, skipped));
        }
        (Some(_), ..) => skipped.push(Skipped::new(
            WORKLOAD_IDENTITY,
            unset(
                "AZURE_FEDERATED_TOKEN_FILE",
                &["AZURE_TENANT_ID", "AZURE_CLIENT_ID"],
            ),
        )),
        (None, ..) => skipped.push(Skipped::new(
            WORKLOAD_IDENTITY,
            "AZURE_FEDERATED_TOKEN_FILE is not set",
        )),
    }

    // A user-assigned identity is named by AZURE_CLIENT_ID, as in the SDKs.
    let client_id = client_id.map(str::to_owned);
    let unsupported = |what: &str| {
        let mut skipped = skipped.clone();
        skipped.push(Skipped::new(
            MANAGED_IDENTITY,
            format!("{what} is not supported"),
        ));
        skipped
    };
    match env.var("IDENTITY_ENDPOINT") {
        Some(_) if env.var("IMDS_ENDPOINT").is_some() => Err(unsupported(
            "Azure Arc (IDENTITY_ENDPOINT with IMDS_ENDPOINT)",
        )),
        Some(_) if env.var("IDENTITY_SERVER_THUMBPRINT").is_some() => Err(unsupported(
            "Service Fabric (IDENTITY_ENDPOINT with IDENTITY_SERVER_THUMBPRINT)",
        )),
        Some(endpoint) => match env.var("IDENTITY_HEADER") {
            Some(header) => Ok((
                Decision::AppService {
                    endpoint: endpoint.to_owned(),
                    header: Secret::new(header),
                    client_id,
                },
                skipped,
            )),
            None => {
                skipped.push(Skipped::new(
                    MANAGED_IDENTITY,
                    "IDENTITY_ENDPOINT is set but IDENTITY_HEADER is not",
                ));
                Err(skipped)
            }
        },
        None if env.var("MSI_ENDPOINT").is_some() => Err(unsupported(
            "MSI_ENDPOINT (Cloud Shell, or App Service's 2017 protocol)",
        )),
        None => Ok((
            Decision::Imds {
                host: env
                    .var("AZURE_POD_IDENTITY_AUTHORITY_HOST")
                    .unwrap_or(DEFAULT_IMDS_HOST)
                    .to_owned(),
                client_id,
            },
            skipped,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKLOAD: [(&str, &str); 3] = [
        ("AZURE_CLIENT_ID", "cid"),
        ("AZURE_TENANT_ID", "tid"),
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            "/var/run/secrets/azure/tokens/azure-identity-token",
        ),
    ];

    type Vars = Vec<(&'static str, &'static str)>;

    fn env(vars: &[(&str, &str)]) -> Env {
        vars.iter().copied().collect()
    }

    fn reasons(skipped: &[Skipped]) -> Vec<String> {
        skipped.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_sdks_order_with_every_reason() {
        let imds = |client_id: Option<&str>| Decision::Imds {
            host: DEFAULT_IMDS_HOST.into(),
            client_id: client_id.map(Into::into),
        };
        // (environment, decision, reasons of what was passed over)
        let table: Vec<(Vars, Decision, Vec<&str>)> = vec![
            (
                vec![],
                imds(None),
                vec![
                    "environment: AZURE_CLIENT_SECRET is not set",
                    "workload identity: AZURE_FEDERATED_TOKEN_FILE is not set",
                ],
            ),
            (
                vec![
                    ("AZURE_CLIENT_SECRET", "s"),
                    ("AZURE_TENANT_ID", "tid"),
                    ("AZURE_CLIENT_ID", "cid"),
                    ("AZURE_FEDERATED_TOKEN_FILE", "/f"),
                ],
                Decision::ClientSecret {
                    authority: DEFAULT_AUTHORITY_HOST.into(),
                    tenant: "tid".into(),
                    client_id: "cid".into(),
                    secret: Secret::new("s"),
                },
                vec![],
            ),
            (
                WORKLOAD.to_vec(),
                Decision::WorkloadIdentity {
                    authority: DEFAULT_AUTHORITY_HOST.into(),
                    tenant: "tid".into(),
                    client_id: "cid".into(),
                    file: WORKLOAD[2].1.into(),
                },
                vec!["environment: AZURE_CLIENT_SECRET is not set"],
            ),
            (
                [WORKLOAD.as_slice(), &[("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us/")]].concat(),
                Decision::WorkloadIdentity {
                    authority: "https://login.microsoftonline.us/".into(),
                    tenant: "tid".into(),
                    client_id: "cid".into(),
                    file: WORKLOAD[2].1.into(),
                },
                vec!["environment: AZURE_CLIENT_SECRET is not set"],
            ),
            (
                vec![("AZURE_FEDERATED_TOKEN_FILE", "/f"), ("AZURE_CLIENT_ID", "cid")],
                imds(Some("cid")),
                vec![
                    "environment: AZURE_CLIENT_SECRET is not set",
                    "workload identity: AZURE_FEDERATED_TOKEN_FILE is set but AZURE_TENANT_ID is not",
                ],
            ),
            (
                vec![("AZURE_CLIENT_SECRET", "s"), ("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:9")],
                Decision::Imds { host: "http://127.0.0.1:9".into(), client_id: None },
                vec![
                    "environment: AZURE_CLIENT_SECRET is set but AZURE_TENANT_ID and AZURE_CLIENT_ID are not",
                    "workload identity: AZURE_FEDERATED_TOKEN_FILE is not set",
                ],
            ),
            (
                vec![("AZURE_CLIENT_CERTIFICATE_PATH", "/c.pem"), ("IDENTITY_ENDPOINT", "http://127.0.0.1:41741/MSI/token/"), ("IDENTITY_HEADER", "h")],
                Decision::AppService {
                    endpoint: "http://127.0.0.1:41741/MSI/token/".into(),
                    header: Secret::new("h"),
                    client_id: None,
                },
                vec![
                    "environment: AZURE_CLIENT_CERTIFICATE_PATH is set: certificates are not read here (use oauth2's private_key_jwt with the certificate's key)",
                    "workload identity: AZURE_FEDERATED_TOKEN_FILE is not set",
                ],
            ),
        ];
        for (vars, decision, skipped) in table {
            let (got, got_skipped) =
                choose(&env(&vars)).unwrap_or_else(|s| panic!("{vars:?}: {s:?}"));
            assert_eq!(got, decision, "{vars:?}");
            assert_eq!(reasons(&got_skipped), skipped, "{vars:?}");
        }
    }

    #[test]
    fn managed_identity_platforms_not_spoken_stop_the_search() {
        for (vars, last) in [
            (
                vec![("IDENTITY_ENDPOINT", "http://localhost:40342/x"), ("IMDS_ENDPOINT", "http://localhost:40342")],
                "managed identity: Azure Arc (IDENTITY_ENDPOINT with IMDS_ENDPOINT) is not supported",
            ),
            (
                vec![("IDENTITY_ENDPOINT", "https://10.0.0.4:2377/x"), ("IDENTITY_HEADER", "h"), ("IDENTITY_SERVER_THUMBPRINT", "ab")],
                "managed identity: Service Fabric (IDENTITY_ENDPOINT with IDENTITY_SERVER_THUMBPRINT) is not supported",
            ),
            (
                vec![("IDENTITY_ENDPOINT", "http://127.0.0.1:41741/MSI/token/")],
                "managed identity: IDENTITY_ENDPOINT is set but IDENTITY_HEADER is not",
            ),
            (
                vec![("MSI_ENDPOINT", "http://localhost:50342/oauth2/token")],
                "managed identity: MSI_ENDPOINT (Cloud Shell, or App Service's 2017 protocol) is not supported",
            ),
        ] {
            let skipped = choose(&env(&vars)).unwrap_err();
            assert_eq!(reasons(&skipped).len(), 3, "{vars:?}");
            assert_eq!(reasons(&skipped)[2], last, "{vars:?}");
        }
    }
}
