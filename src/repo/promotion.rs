//! Promotion preview: what would promoting one environment branch into
//! another change?
//!
//! Environment branches carry the same controlcenter.yaml, tags.yaml,
//! schemas, policies and Jsonnet, and each its own Terraform outputs and
//! sealed secrets. Promoting `dev` into `preprod` merges the first kind of
//! file from `dev`; `env-preprod.yaml` and `secrets.yaml` stay preprod's
//! (secrets are sealed per cluster). [`Promotion`] presents exactly that
//! view, and rendering `preprod` from it shows the result.

use std::sync::Arc;

use crate::repo::layout::SECRETS_FILE;
use crate::repo::{normalize, ReadError, RepoFiles};

/// The files of a promotion: shared inputs from the source, per-environment
/// inputs from the target.
pub struct Promotion {
    /// The source branch (`dev`).
    pub source: Arc<dyn RepoFiles>,
    /// The target branch (`preprod`).
    pub target: Arc<dyn RepoFiles>,
}

/// Whether a repo-relative path belongs to the target environment's branch.
pub fn stays_with_target(rel: &str) -> bool {
    let rel = normalize(rel).unwrap_or_default();
    rel == SECRETS_FILE || (!rel.contains('/') && rel.starts_with("env-") && rel.ends_with(".yaml"))
}

impl RepoFiles for Promotion {
    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, ReadError> {
        if stays_with_target(rel) {
            self.target.read(rel)
        } else {
            self.source.read(rel)
        }
    }

    fn read_real(&self, rel: &str) -> Result<Option<(String, Vec<u8>)>, ReadError> {
        if stays_with_target(rel) {
            self.target.read_real(rel)
        } else {
            self.source.read_real(rel)
        }
    }

    fn list_files(&self, rel: &str) -> Vec<String> {
        self.source.list_files(rel)
    }

    fn list_dirs(&self, rel: &str) -> Vec<String> {
        self.source.list_dirs(rel)
    }

    fn list_entries(&self, rel: &str) -> Result<Vec<(String, super::EntryKind)>, String> {
        self.source.list_entries(rel)
    }

    fn parts(&self) -> Vec<Arc<dyn RepoFiles>> {
        vec![self.source.clone(), self.target.clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_and_secrets_stay_with_the_target() {
        for p in ["env-preprod.yaml", "secrets.yaml", "./env-dev.yaml"] {
            assert!(stays_with_target(p), "{p}");
        }
        for p in [
            "controlcenter.yaml",
            "tags.yaml",
            "jsonnet/main.jsonnet",
            "schemas/service.schema.json",
            "jsonnet/env-x.yaml",
        ] {
            assert!(!stays_with_target(p), "{p}");
        }
    }
}
