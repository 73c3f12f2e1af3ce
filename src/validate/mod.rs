//! Validate: the input files against their JSON Schemas, and the rendered
//! manifests against policies.

pub mod policy;
pub mod schema;
