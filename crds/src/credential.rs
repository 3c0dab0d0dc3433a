//! The `Credential` custom resource: the admin-owned catalogue entry behind a logical credential name.
//! Task authors only write names (`credentials: [prod-org]`); this says which provider and Vault path
//! the name means and which namespaces may use it. Cluster-scoped so only cluster admins (by RBAC) can
//! create or change what a name grants.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a logical credential name grants.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "ephemera.dev",
    version = "v1alpha1",
    kind = "Credential",
    shortname = "ecred",
    category = "ephemera",
    doc = "A logical credential name (admin-owned): which provider and Vault path it means, and which namespaces may use it.",
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.provider"),
    printcolumn(name = "Namespaces", type_ = "string", json_path = ".spec.namespaces"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct CredentialSpec {
    /// How the worker turns the Vault secret into what the task command gets.
    pub provider: Provider,
    /// KV v2 secret holding the provider's inputs (e.g. `ephemera/salesforce/prod`), under `mount`.
    #[schemars(length(min = 1, max = 512), regex(pattern = r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"))]
    pub vault_path: String,
    /// KV v2 mount.
    #[serde(default = "default_mount")]
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"))]
    pub mount: String,
    /// Namespaces whose Tasks may use this credential (`*` for all). Empty: none.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// GitHub App: the repositories and permissions the installation token is limited to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<GithubScope>,
    /// `static`: deliver the values as files under `/var/run/ephemera/secrets/<name>/` (memory-backed,
    /// removed at the end) instead of environment variables.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub files: bool,
    /// `salesforce` / `github-app`: the Vault Transit key that signs the provider's JWT assertions.
    /// The private key never leaves Vault (import it once as a non-exportable key). Without it the
    /// key is read from KV (`private_key`), which the operator allows only with
    /// `--allow-kv-private-keys` (weaker: a stolen per-attempt token could read the key itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<TransitKey>,
}

/// A Vault Transit signing key (RSA, imported by the admin, not exportable).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct TransitKey {
    /// Transit secrets engine mount.
    #[serde(default = "default_transit_mount")]
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"))]
    pub mount: String,
    /// Key name under the mount.
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z0-9_.-]+$"))]
    pub name: String,
}

fn default_transit_mount() -> String {
    "transit".into()
}

impl Provider {
    /// Whether the provider signs JWT assertions with a private key (Salesforce, GitHub App).
    pub fn signs(self) -> bool {
        matches!(self, Provider::Salesforce | Provider::GithubApp)
    }

    /// The provider as written in `spec.provider`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Salesforce => "salesforce",
            Provider::GithubApp => "github-app",
            Provider::Static => "static",
        }
    }
}

fn default_mount() -> String {
    "secret".into()
}

/// Provider types.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// OAuth 2.0 JWT bearer flow → `SF_ACCESS_TOKEN`, `SF_INSTANCE_URL`.
    Salesforce,
    /// App JWT → installation token → `GITHUB_TOKEN`.
    GithubApp,
    /// KV v2 values as environment variables or files.
    Static,
}

/// Scope of a GitHub installation token.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
pub struct GithubScope {
    /// Repository names the token may access (empty: all the installation has).
    #[serde(default)]
    pub repositories: Vec<String>,
    /// Permissions, e.g. `contents: read` (never more than the installation has).
    #[serde(default)]
    pub permissions: std::collections::BTreeMap<String, String>,
}

impl Credential {
    /// Whether Tasks in `namespace` may use it.
    pub fn allows(&self, namespace: &str) -> bool {
        self.spec.namespaces.iter().any(|n| n == "*" || n == namespace)
    }
}
