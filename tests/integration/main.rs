//! The end-to-end tests: the real binary on example repositories and
//! fixtures, one test binary (one link of jrsonnet, git2 and jsonschema).
//! Snapshots hold exit code, stdout and stderr; temp paths are filtered.

mod cli;
mod cmp;
mod common;
mod engines;
mod errors;
mod explain;
mod fuzz;
mod git;
mod hostile;
mod hydrate;
mod jsonnet_compat;
mod k8s_schemas;
mod library;
mod memo;
mod outputs;
mod policies;
mod precommit;
mod render;
mod tags;
mod units;
mod vendor;
mod verdicts;
