//! Input files are read under their own name only.
//!
//! `env-prod.yaml` and `secrets.yaml` hold secrets, and only their own
//! loaders know which values to mask. A link, a linked directory, a hard
//! link or a copy under another name (`policies/p.yaml`, a template's
//! `importstr 'tfdata.txt'`) would hand the same bytes to a reader that
//! shows them. [`Guarded`] wraps any tree the run reads (the repository,
//! the library, `eval -J` directories) and refuses such reads with
//! [`ReadError::InputFile`].

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::layout::{is_input_file, CONTROLCENTER_FILE, SECRETS_FILE, TAGS_FILE};
use super::{normalize, ReadError, RepoFiles};

/// Files shorter than this are not compared by content: `{}` is no secret.
const MIN_GUARDED_CONTENT: usize = 32;

/// The input files of one or more control-center repositories: their real
/// paths, and the content of those that hold secrets.
#[derive(Debug, Default)]
pub struct InputGuard {
    /// Real path (every link resolved) → the input file's name.
    real_paths: BTreeMap<String, String>,
    /// Length, SHA-256 and name of every env file and secrets.yaml.
    secret_contents: Vec<(usize, [u8; 32], String)>,
}

impl InputGuard {
    /// The input files of the repository `files` (and of every snapshot it
    /// is made of: a promotion guards both branches' inputs).
    pub fn of(files: &dyn RepoFiles) -> Self {
        let mut guard = InputGuard::default();
        guard.add(files);
        for part in files.parts() {
            guard.add(part.as_ref());
        }
        guard
    }

    /// Adds the input files of the repository `files`.
    pub fn add(&mut self, files: &dyn RepoFiles) {
        let mut names = vec![
            CONTROLCENTER_FILE.to_owned(),
            TAGS_FILE.to_owned(),
            SECRETS_FILE.to_owned(),
        ];
        names.extend(
            files
                .list_files("")
                .into_iter()
                .filter(|n| is_input_file(n)),
        );
        names.sort();
        names.dedup();
        // Only the files that hold secrets are read: of the others (the
        // largest inputs) the guard keeps where they are.
        let mut found: Vec<(String, String, Option<Vec<u8>>)> = names
            .into_iter()
            .filter_map(|name| {
                if !holds_secrets(&name) {
                    let real = files.real_path(&name).ok().flatten()?;
                    return Some((name, real, None));
                }
                let (real, bytes) = files.read_real(&name).ok().flatten()?;
                Some((name, real, Some(bytes)))
            })
            .collect();
        // The file that is itself at the real path owns it; other names
        // leading there are links, read under the owner's name only.
        found.sort_by_key(|(name, real, _)| real != name);
        for (name, real, bytes) in found {
            if let Some(bytes) = bytes.filter(|b| b.len() >= MIN_GUARDED_CONTENT) {
                // (an env file identical to another is read as itself)
                self.secret_contents.push((
                    bytes.len(),
                    Sha256::digest(&bytes).into(),
                    name.clone(),
                ));
            }
            self.real_paths.entry(real).or_insert(name);
        }
    }

    /// The input file that the file at `real` (a resolved path of the
    /// repository when `in_repo`, else of another tree) with content
    /// `bytes` is, other than `asked` (the name it is read under), if any.
    pub fn input_behind(
        &self,
        real: &str,
        bytes: &[u8],
        in_repo: bool,
        asked: Option<&str>,
    ) -> Option<String> {
        let other = |name: &str| (asked != Some(name)).then(|| name.to_owned());
        if in_repo {
            // An input under its own name is read as itself; another name
            // leading to an input is refused.
            let by_path = self
                .real_paths
                .get(real)
                .map(String::as_str)
                .or_else(|| is_input_file(real).then_some(real));
            if let Some(name) = by_path {
                if holds_secrets(name) || other(name).is_some() {
                    return other(name);
                }
                // controlcenter.yaml or tags.yaml: still not a copy of a
                // file that holds secrets.
            }
        }
        let mut digest = None;
        self.secret_contents.iter().find_map(|(len, hash, name)| {
            if *len != bytes.len() {
                return None;
            }
            let d: [u8; 32] = *digest.get_or_insert_with(|| Sha256::digest(bytes).into());
            (d == *hash).then(|| other(name)).flatten()
        })
    }
}

/// Whether the input file `name` may hold secrets: every input but
/// controlcenter.yaml and tags.yaml (env files, secrets.yaml).
fn holds_secrets(name: &str) -> bool {
    name != CONTROLCENTER_FILE && name != TAGS_FILE
}

/// A tree whose reads never return an input file's bytes under another
/// name than its own.
pub struct Guarded {
    inner: Arc<dyn RepoFiles>,
    guard: Arc<InputGuard>,
    /// The control-center repository itself (its input names are its
    /// own); false for the library and other trees.
    in_repo: bool,
}

impl Guarded {
    /// Guards `inner` with `guard`; `in_repo` when `inner` is the
    /// repository the guard was made from.
    pub fn new(inner: Arc<dyn RepoFiles>, guard: Arc<InputGuard>, in_repo: bool) -> Self {
        Guarded {
            inner,
            guard,
            in_repo,
        }
    }
}

impl RepoFiles for Guarded {
    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, ReadError> {
        Ok(self.read_real(rel)?.map(|(_, bytes)| bytes))
    }

    fn read_real(&self, rel: &str) -> Result<Option<(String, Vec<u8>)>, ReadError> {
        let Some((real, bytes)) = self.inner.read_real(rel)? else {
            return Ok(None);
        };
        let asked = normalize(rel).filter(|_| self.in_repo);
        match self
            .guard
            .input_behind(&real, &bytes, self.in_repo, asked.as_deref())
        {
            Some(input) => Err(ReadError::InputFile(input)),
            None => Ok(Some((real, bytes))),
        }
    }

    fn list_files(&self, rel: &str) -> Vec<String> {
        self.inner.list_files(rel)
    }

    fn list_dirs(&self, rel: &str) -> Vec<String> {
        self.inner.list_dirs(rel)
    }

    fn list_entries(&self, rel: &str) -> Result<Vec<(String, super::EntryKind)>, String> {
        self.inner.list_entries(rel)
    }

    fn parts(&self) -> Vec<Arc<dyn RepoFiles>> {
        self.inner.parts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Mem(BTreeMap<&'static str, (&'static str, &'static [u8])>);

    impl RepoFiles for Mem {
        fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, ReadError> {
            Ok(self.read_real(rel)?.map(|(_, b)| b))
        }
        fn read_real(&self, rel: &str) -> Result<Option<(String, Vec<u8>)>, ReadError> {
            Ok(self
                .0
                .get(rel)
                .map(|(real, b)| (real.to_string(), b.to_vec())))
        }
        fn list_files(&self, _: &str) -> Vec<String> {
            self.0
                .keys()
                .filter(|k| !k.contains('/'))
                .map(|k| k.to_string())
                .collect()
        }
    }

    #[test]
    fn inputs_are_read_under_their_own_name_only() {
        let env: &[u8] = b"db:\n  sensitive: true\n  value: s3cr3t-s3cr3t-s3cr3t\n";
        let repo: Arc<dyn RepoFiles> = Arc::new(Mem(BTreeMap::from([
            (
                "controlcenter.yaml",
                ("controlcenter.yaml", b"dev: {}\n".as_slice()),
            ),
            // env-prod.yaml is a link to jsonnet/tf.txt.
            ("env-prod.yaml", ("jsonnet/tf.txt", env)),
            ("jsonnet/tf.txt", ("jsonnet/tf.txt", env)),
            ("jsonnet/copy.txt", ("jsonnet/copy.txt", env)),
            ("policies/p.yaml", ("env-prod.yaml", env)),
            (
                "jsonnet/ok.libsonnet",
                ("jsonnet/ok.libsonnet", b"{}".as_slice()),
            ),
        ])));
        let guard = Arc::new(InputGuard::of(repo.as_ref()));
        let guarded = Guarded::new(repo.clone(), guard.clone(), true);
        assert!(guarded.read("env-prod.yaml").unwrap().is_some());
        assert!(guarded.read("controlcenter.yaml").unwrap().is_some());
        assert!(guarded.read("jsonnet/ok.libsonnet").unwrap().is_some());
        for other in ["jsonnet/tf.txt", "jsonnet/copy.txt", "policies/p.yaml"] {
            assert_eq!(
                guarded.read(other),
                Err(ReadError::InputFile("env-prod.yaml".into())),
                "{other}"
            );
        }
        // Another tree (the library, a -J directory): by content.
        let lib = Guarded::new(repo, guard, false);
        assert!(lib.read("jsonnet/copy.txt").is_err());
        assert!(lib.read("jsonnet/ok.libsonnet").unwrap().is_some());
    }
}
