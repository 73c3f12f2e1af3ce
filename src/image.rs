//! Container image references: the one parser every stage uses (the
//! tags.yaml schema, `tags set`, the `no-mutable-images` rule).
//!
//! `[registry[:port]/]repository[:tag][@sha256:digest]`, as the OCI
//! distribution spec and Docker write them.

/// An image reference split into its parts (borrowed from the text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageRef<'a> {
    /// The registry host (with port), when the first path part names one.
    pub registry: Option<&'a str>,
    /// The repository path (`team/app`).
    pub repository: &'a str,
    /// The tag, without `:`.
    pub tag: Option<&'a str>,
    /// The digest, without `@` (`sha256:…`).
    pub digest: Option<&'a str>,
}

impl<'a> ImageRef<'a> {
    /// Splits `text` into its parts without checking them: every string
    /// has a split, so a policy can judge even a malformed reference.
    pub fn split(text: &'a str) -> Self {
        let (name, digest) = match text.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (text, None),
        };
        let last_slash = name.rfind('/');
        let (path, tag) = match name.rfind(':') {
            Some(i) if last_slash.is_none_or(|s| i > s) => (&name[..i], Some(&name[i + 1..])),
            _ => (name, None),
        };
        // As Docker splits: the first part names a registry when it has a
        // `.`, a `:` or an uppercase letter, or is `localhost`.
        let (registry, repository) = match path.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                (Some(first), rest)
            }
            _ => (None, path),
        };
        ImageRef {
            registry,
            repository,
            tag,
            digest,
        }
    }

    /// Parses and checks a reference; the error says which part is wrong
    /// without quoting it (messages never quote values).
    pub fn parse(text: &'a str) -> Result<Self, String> {
        let r = Self::split(text);
        if let Some(d) = r.digest {
            let hex = d
                .strip_prefix("sha256:")
                .ok_or("the digest must be @sha256:<64 hex digits>")?;
            if hex.len() != 64
                || !hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err("the digest must be @sha256:<64 lowercase hex digits>".into());
            }
        }
        if let Some(t) = r.tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !ok {
                return Err("the tag is not valid: letters, digits, `_`, `.` and `-`, not starting with `.` or `-`, at most 128".into());
            }
        }
        if let Some(host) = r.registry {
            let (name, port) = match host.split_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (host, None),
            };
            let name_ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
            let port_ok =
                port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            if !name_ok || !port_ok {
                return Err("the registry host is not valid: letters, digits, `.` and `-`, then an optional :port".into());
            }
        }
        if r.repository.split('/').any(|p| !is_path_component(p)) {
            return Err("the repository path is not valid: lowercase letters and digits, parts separated by `/`, words by `.`, `_` or `-`".into());
        }
        Ok(r)
    }

    /// Whether what runs can change under the same reference: tagged
    /// `latest` or not tagged, and not pinned by digest.
    pub fn is_mutable(&self) -> bool {
        self.digest.is_none() && self.tag.is_none_or(|t| t == "latest")
    }
}

/// `[a-z0-9]+([._-]+[a-z0-9]+)*`
fn is_path_component(p: &str) -> bool {
    !p.is_empty()
        && p.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
        && p.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && p.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_references_parse_into_their_parts() {
        let r = ImageRef::parse("reg.example.com:5000/team/app:1.2.3").unwrap();
        assert_eq!(r.registry, Some("reg.example.com:5000"));
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag, Some("1.2.3"));
        for ok in [
            "app:1",
            "app",
            "localhost:5000/app:v1",
            "reg.io/app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "reg.io/app:1@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "Team/app:1",
            "LOCALHOST/app",
        ] {
            assert!(ImageRef::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn malformed_references_are_refused() {
        for bad in [
            "reg.io/App:1",
            "reg.io/app:",
            "reg.io/app:-x",
            "reg.io/app@sha256:1234",
            "reg.io/app@md5:00",
            "not an image",
            "",
            "reg.io//app:1",
            "re g.io/app:1",
            "reg.io:/app:1",
            "my_reg.io/app:1",
            "x-/app:1",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn latest_and_untagged_are_mutable_a_digest_is_not() {
        let mutable = |s| ImageRef::split(s).is_mutable();
        assert!(mutable("reg.io/app:latest"));
        assert!(mutable("reg.io:5000/app"));
        assert!(mutable("app"));
        assert!(!mutable("reg.io:5000/app:1.2"));
        assert!(!mutable(
            "reg.io/app:latest@sha256:0000000000000000000000000000000000000000000000000000000000000000"
        ));
    }
}
