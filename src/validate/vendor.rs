//! jsonnet-bundler's files: `jsonnetfile.json` (the libraries a repository
//! asks for), `jsonnetfile.lock.json` (the versions it got) and `vendor/`
//! (their files, on the import path). `validate` warns when `vendor/` does
//! not hold what the lock file names, or the lock file misses a library
//! the manifest asks for: renders would fail or use other code than
//! reviewed. Warnings only: the templates are what they are.

use serde_json::Value as Json;

use crate::diagnostics::{Code, Diagnostic, Sources, Span};
use crate::repo::layout::{JSONNETFILE, JSONNETFILE_LOCK, VENDOR_DIR};
use crate::repo::{normalize, RepoFiles};

/// Where jsonnet-bundler installs one dependency, relative to `vendor/`,
/// and how users know it.
#[derive(Debug, PartialEq, Eq)]
struct Dependency {
    /// `github.com/org/repo/subdir`, or the local package's name.
    install: String,
    /// The source as written (remote and subdirectory, or directory).
    source: String,
}

/// The dependency an entry of `dependencies` describes, if it is one.
fn dependency(entry: &Json) -> Option<Dependency> {
    let source = entry.get("source")?;
    if let Some(git) = source.get("git") {
        let remote = git.get("remote")?.as_str()?;
        let subdir = git.get("subdir").and_then(Json::as_str).unwrap_or("");
        let mut install = remote_path(remote)?;
        let subdir = subdir.trim_matches('/');
        if !subdir.is_empty() {
            install = format!("{install}/{subdir}");
        }
        return Some(Dependency {
            install: normalize(&install)?,
            source: if subdir.is_empty() {
                remote.to_owned()
            } else {
                format!("{remote} ({subdir})")
            },
        });
    }
    let directory = source.get("local")?.get("directory")?.as_str()?;
    let name = entry
        .get("name")
        .and_then(Json::as_str)
        .or_else(|| directory.trim_end_matches('/').rsplit('/').next())?;
    Some(Dependency {
        install: normalize(name)?,
        source: directory.to_owned(),
    })
}

/// `https://github.com/org/repo.git` and `git@github.com:org/repo` →
/// `github.com/org/repo`, as jsonnet-bundler names its directories.
fn remote_path(remote: &str) -> Option<String> {
    let rest = match remote.split_once("://") {
        Some((_, rest)) => rest,
        None => remote,
    };
    // No credentials, no `user@` of SSH remotes, `host:path` as `host/path`.
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let rest = rest.replacen(':', "/", 1);
    let path = rest.trim_end_matches('/').trim_end_matches(".git");
    (!path.is_empty()).then(|| path.to_owned())
}

/// A repository file, registered for snippets, and its JSON (or the
/// warning saying why it is not JSON).
fn read_json(
    repo: &dyn RepoFiles,
    sources: &mut Sources,
    path: &str,
) -> Option<Result<(Json, Span), Diagnostic>> {
    let bytes = repo.read(path).ok()??;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let id = sources.add(path, text.clone());
    Some(match serde_json::from_str::<Json>(&text) {
        Ok(json) => Ok((json, Span::new(id, 0, 0))),
        Err(e) => {
            let at = crate::load::line_col_to_offset(&text, e.line(), e.column());
            Err(Diagnostic::warning(
                Code::VendorMismatch,
                format!("{path} is not valid JSON: {e}"),
            )
            .at(Span::new(id, at, at), "here")
            .help("jsonnet-bundler writes this file; run `jb install` again"))
        }
    })
}

/// The dependencies listed in a parsed file, each with the span of its
/// source in the file's text.
fn dependencies(json: &Json, text: &str, file: Span) -> Vec<(Dependency, Span)> {
    let Some(list) = json.get("dependencies").and_then(Json::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(dependency)
        .map(|dep| {
            let needle = dep.source.split(" (").next().unwrap_or_default();
            let quoted = serde_json::to_string(needle).unwrap_or_default();
            let span = text
                .find(&quoted)
                .map_or(file, |at| Span::new(file.file, at, at + quoted.len()));
            (dep, span)
        })
        .collect()
}

/// Warnings about `vendor/` and the jsonnet-bundler files; none when the
/// repository does not use jsonnet-bundler.
pub fn check(repo: &dyn RepoFiles, sources: &mut Sources) -> Vec<Diagnostic> {
    let mut warnings = Vec::new();
    let parse = |path: &str, warnings: &mut Vec<Diagnostic>, sources: &mut Sources| match read_json(
        repo, sources, path,
    )? {
        Ok((json, span)) => {
            let text = sources.get(span.file).text.clone();
            Some(dependencies(&json, &text, span))
        }
        Err(d) => {
            warnings.push(d);
            None
        }
    };
    let wanted = parse(JSONNETFILE, &mut warnings, sources);
    let locked = parse(JSONNETFILE_LOCK, &mut warnings, sources);
    if let (Some(wanted), Some(locked)) = (&wanted, &locked) {
        for (dep, span) in wanted {
            if !locked.iter().any(|(l, _)| l.install == dep.install) {
                warnings.push(
                    Diagnostic::warning(
                        Code::VendorMismatch,
                        format!("{} is not in {JSONNETFILE_LOCK}", dep.source),
                    )
                    .at(*span, "asked for here")
                    .help("run `jb install` to lock and vendor it"),
                );
            }
        }
    } else if let (Some(wanted), None) = (&wanted, &locked) {
        if let Some((dep, span)) = wanted.first() {
            warnings.push(
                Diagnostic::warning(
                    Code::VendorMismatch,
                    format!(
                        "{JSONNETFILE} asks for {} and there is no {JSONNETFILE_LOCK}",
                        dep.source
                    ),
                )
                .at(*span, "asked for here")
                .help("run `jb install` and commit the lock file with vendor/"),
            );
        }
    }
    for (dep, span) in locked.iter().flatten() {
        let dir = format!("{VENDOR_DIR}/{}", dep.install);
        let present = !repo.list_files(&dir).is_empty() || !repo.list_dirs(&dir).is_empty();
        if !present {
            warnings.push(
                Diagnostic::warning(
                    Code::VendorMismatch,
                    format!("{dir}/ is missing: {JSONNETFILE_LOCK} locks {}", dep.source),
                )
                .at(*span, "locked here")
                .help("run `jb install` and commit vendor/, or remove the dependency"),
            );
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remotes_name_their_vendor_directory_as_jsonnet_bundler_does() {
        for (remote, path) in [
            (
                "https://github.com/jsonnet-libs/k8s-libsonnet.git",
                "github.com/jsonnet-libs/k8s-libsonnet",
            ),
            (
                "https://github.com/grafana/jsonnet-libs",
                "github.com/grafana/jsonnet-libs",
            ),
            ("git@github.com:org/repo.git", "github.com/org/repo"),
            (
                "ssh://git@gitlab.example.com/a/b.git",
                "gitlab.example.com/a/b",
            ),
        ] {
            assert_eq!(remote_path(remote).as_deref(), Some(path), "{remote}");
        }
        let dep = dependency(&serde_json::json!({
            "source": {"git": {"remote": "https://github.com/jsonnet-libs/k8s-libsonnet.git", "subdir": "1.29"}},
            "version": "main"
        }))
        .unwrap();
        assert_eq!(dep.install, "github.com/jsonnet-libs/k8s-libsonnet/1.29");
        let local = dependency(&serde_json::json!({
            "source": {"local": {"directory": "jsonnet/kube-prometheus"}}, "version": ""
        }))
        .unwrap();
        assert_eq!(local.install, "kube-prometheus");
        // A path that climbs out of vendor/ names nothing.
        assert_eq!(
            dependency(
                &serde_json::json!({"source": {"local": {"directory": "x"}}, "name": "../../etc"})
            ),
            None
        );
    }
}
