//! The shipped Jsonnet library (lib-jsonnet/), compiled into the binary, or
//! read from a directory given with `--lib` while developing it.

use crate::repo::{normalize, ReadError, RepoFiles};

include!(concat!(env!("OUT_DIR"), "/lib_files.rs"));

/// The library's default entry point.
pub const LIB_ENTRY: &str = "main.jsonnet";

/// The embedded copy of lib-jsonnet.
pub struct EmbeddedLibrary;

impl RepoFiles for EmbeddedLibrary {
    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, ReadError> {
        let rel = normalize(rel).ok_or(ReadError::OutsideRepo)?;
        Ok(LIB_FILES
            .iter()
            .find(|(p, _)| *p == rel)
            .map(|(_, text)| text.as_bytes().to_vec()))
    }

    fn list_files(&self, rel: &str) -> Vec<String> {
        self.entries(rel, false)
    }

    fn list_dirs(&self, rel: &str) -> Vec<String> {
        self.entries(rel, true)
    }
}

impl EmbeddedLibrary {
    /// Names directly in directory `rel`: of directories, or of files.
    fn entries(&self, rel: &str, dirs: bool) -> Vec<String> {
        let Some(rel) = normalize(rel) else {
            return Vec::new();
        };
        let prefix = if rel.is_empty() { rel } else { rel + "/" };
        let mut names: Vec<String> = LIB_FILES
            .iter()
            .filter_map(|(p, _)| p.strip_prefix(prefix.as_str()))
            .filter_map(|rest| match rest.split_once('/') {
                Some((dir, _)) => dirs.then(|| dir.to_owned()),
                None => (!dirs).then(|| rest.to_owned()),
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }
}
