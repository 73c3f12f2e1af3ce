//! The resolved state: exactly what the Jsonnet library receives as its
//! top-level argument `state` (documented in `docs/state.md`).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value as Json;

use crate::redact::MaybeSecret;

/// Everything the library needs to render one environment.
#[derive(Debug, Clone, Serialize)]
pub struct State {
    /// Environment name.
    pub env: String,
    /// Target namespace.
    pub namespace: String,
    /// Whether the environment is protected (mutable images refused).
    pub protected: bool,
    /// `app.kubernetes.io/part-of`.
    pub part_of: String,
    /// Environment parameters, Terraform outputs under `terraform`.
    pub params: BTreeMap<String, Json>,
    /// Enabled services by key.
    pub services: BTreeMap<String, ServiceState>,
    /// SealedSecrets of this environment by name.
    pub sealed_secrets: BTreeMap<String, SealedSecretState>,
    /// Labels every object carries.
    pub labels: BTreeMap<String, String>,
}

/// One enabled service with every knob resolved and defaulted.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceState {
    /// Key in controlcenter.yaml.
    pub key: String,
    /// Kubernetes name (DNS-1035 label).
    pub name: String,
    /// Git revision.
    pub git_rev: String,
    /// Container image from tags.yaml.
    pub image: String,
    /// `app.kubernetes.io/version` value.
    pub version: String,
    /// Replicas.
    pub replicas: u32,
    /// Container port.
    pub port: u16,
    /// Memory request.
    pub memory_min: Option<String>,
    /// Memory limit.
    pub memory_max: Option<String>,
    /// CPU request.
    pub cpu_min: Option<String>,
    /// CPU limit.
    pub cpu_max: Option<String>,
    /// Plain environment variables.
    pub env: BTreeMap<String, String>,
    /// Feature toggles.
    pub flags: BTreeMap<String, bool>,
    /// HTTP probes, `None` when disabled.
    pub probes: Option<Probes>,
    /// HPA settings.
    pub autoscaling: Option<Autoscaling>,
    /// PDB settings (`min_available` or `max_unavailable`).
    pub disruption_budget: Option<BTreeMap<String, Json>>,
    /// Ingress settings.
    pub ingress: Option<Ingress>,
    /// IRSA role ARN.
    pub irsa_role_arn: Option<String>,
    /// Env vars from an external secret store.
    pub secrets: BTreeMap<String, SecretRef>,
    /// External cloud resources.
    pub resources: BTreeMap<String, CloudResource>,
    /// Extra pod-template annotations.
    pub annotations: BTreeMap<String, String>,
    /// Fields declared by the repo's own schema; those it marks
    /// `writeOnly` print as `<redacted>` outside the template input.
    pub extra: BTreeMap<String, MaybeSecret>,
}

/// HTTP probe settings.
#[derive(Debug, Clone, Serialize)]
pub struct Probes {
    /// Probe path.
    pub path: String,
    /// Seconds before the first probe.
    pub initial_delay_seconds: u32,
}

/// HorizontalPodAutoscaler settings.
#[derive(Debug, Clone, Serialize)]
pub struct Autoscaling {
    /// Lower bound.
    pub min_replicas: u32,
    /// Upper bound.
    pub max_replicas: u32,
    /// Target CPU utilisation in percent.
    pub cpu_utilization: u32,
}

/// Ingress settings.
#[derive(Debug, Clone, Serialize)]
pub struct Ingress {
    /// Host name.
    pub host: String,
    /// Path prefix.
    pub path: String,
    /// IngressClass name.
    pub class: Option<String>,
    /// TLS secret name.
    pub tls_secret: Option<String>,
    /// Ingress annotations.
    pub annotations: BTreeMap<String, String>,
}

/// A reference into an external secret store.
#[derive(Debug, Clone, Serialize)]
pub struct SecretRef {
    /// ClusterSecretStore name.
    pub store: String,
    /// Key in the store.
    pub key: String,
    /// Property of the key, if any.
    pub property: Option<String>,
}

/// An external cloud resource (Terraform Cloud Operator workspace).
#[derive(Debug, Clone, Serialize)]
pub struct CloudResource {
    /// Terraform module source.
    pub module: String,
    /// Module variables.
    pub variables: BTreeMap<String, Json>,
}

/// A SealedSecret from secrets.yaml.
#[derive(Debug, Clone, Serialize)]
pub struct SealedSecretState {
    /// Namespace the secret is sealed for.
    pub namespace: String,
    /// Secret type.
    #[serde(rename = "type")]
    pub secret_type: String,
    /// Ciphertexts by key.
    #[serde(rename = "encryptedData")]
    pub encrypted_data: BTreeMap<String, String>,
}
