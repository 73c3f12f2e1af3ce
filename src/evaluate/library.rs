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
}
