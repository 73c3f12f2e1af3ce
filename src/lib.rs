//! controlcenter compiles a branch-per-environment GitOps repository into
//! the Kubernetes manifests of one environment:
//!
//! load → validate → resolve → evaluate → process → check → emit
//!
//! [`pipeline`] is that recipe; each stage is one module below, the
//! commands sit on top (`commands/`, `cli/`). `docs/architecture.md` shows
//! the layout and where to change what.

pub mod cli;
pub mod commands;
pub mod diagnostics;
pub mod emit;
pub mod evaluate;
pub mod image;
pub mod load;
pub mod names;
pub mod parallel;
pub mod pipeline;
pub mod process;
pub mod redact;
pub mod repo;
pub mod resolve;
pub mod rules;
pub mod settings;
#[cfg(test)]
mod testing;
pub mod text;
pub mod validate;

pub use pipeline::{Failure, Project, RenderOptions};
