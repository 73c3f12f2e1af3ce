//! Validate: the input files against their JSON Schemas.

pub mod schema;
