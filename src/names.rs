//! Kubernetes names: the one parser and checker of object names, label
//! values, kinds and apiVersions, used by every stage (service keys become
//! names in resolve, rendered names are checked in process).

/// Turns a service key into a DNS-1035 label (`service_rpps` → `service-rpps`):
/// lowercase, `_` and `.` become `-`. `None` when the result is not a valid
/// label (it must start with a letter, end with a letter or digit, hold only
/// `a-z0-9-` and be at most 63 characters). DNS-1035 rather than DNS-1123
/// because a Service name must start with a letter.
pub fn dns_label(key: &str) -> Option<String> {
    let name: String = key
        .chars()
        .map(|c| match c {
            '_' | '.' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    is_dns_label(&name).then_some(name)
}

/// Whether `s` is a DNS-1035 label: a DNS-1123 label that starts with a
/// letter.
pub fn is_dns_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// Whether `s` is a DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at
/// most 63 characters): what a namespace name must be.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Whether `s` is a DNS-1123 subdomain (dot-separated labels, at most 253
/// characters): what most object names must be.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// Whether `s` is a valid path segment name (not `.` or `..`, no `/` or
/// `%`): what RBAC object names must be (`system:aggregate-to-view`).
pub fn is_path_segment_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && !s.contains(['/', '%'])
        && !s.chars().any(char::is_control)
}

/// What the name of an object of `group`/`kind` must be, as Kubernetes
/// validates it; `None` when the name is valid.
pub fn object_name_problem(group: &str, kind: &str, name: &str) -> Option<&'static str> {
    let (ok, form) = match (group, kind) {
        ("", "Namespace") => (is_dns1123_label(name), "a DNS-1123 label (lowercase letters, digits and `-`, at most 63 characters)"),
        ("", "Service") => (is_dns_label(name), "a DNS-1035 label (a lowercase letter first, then lowercase letters, digits and `-`, at most 63 characters)"),
        ("rbac.authorization.k8s.io", _) => (is_path_segment_name(name), "a path segment (not `.` or `..`, no `/` or `%`)"),
        _ => (is_dns1123_subdomain(name), "a DNS-1123 subdomain (lowercase letters, digits, `-` and `.`, at most 253 characters)"),
    };
    (!ok).then_some(form)
}

/// Whether `s` can be a `kind` (`Deployment`, `ServiceMonitor`).
pub fn is_kind(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric())
        && s.len() <= 63
}

/// Whether `s` can be an `apiVersion` (`v1`, `apps/v1`, `example.com/v1alpha1`).
pub fn is_api_version(s: &str) -> bool {
    let (group, version) = s.rsplit_once('/').unwrap_or(("", s));
    (group.is_empty() || is_dns1123_subdomain(group)) && is_dns1123_label(version)
}

/// `s` cut to 80 characters for a message (an input may be megabytes).
pub fn clip(s: &str) -> String {
    const MAX: usize = 80;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// A label value from a Git revision: at most 63 of `[A-Za-z0-9._-]`,
/// starting and ending alphanumeric (`feature/x` → `feature-x`).
pub fn label_value(s: &str) -> String {
    let mapped: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_keys_become_dns_labels() {
        assert_eq!(dns_label("service_rpps").as_deref(), Some("service-rpps"));
        assert_eq!(dns_label("Auth.API").as_deref(), Some("auth-api"));
        assert_eq!(dns_label("1svc"), None);
        assert_eq!(dns_label("svc_"), None);
        assert_eq!(dns_label("svc+x"), None);
        assert_eq!(dns_label(&"a".repeat(64)), None);
    }

    #[test]
    fn object_names_follow_their_kind() {
        assert_eq!(object_name_problem("apps", "Deployment", "web.v2"), None);
        assert!(object_name_problem("apps", "Deployment", "../../x").is_some());
        assert!(object_name_problem("apps", "Deployment", "Web").is_some());
        assert!(object_name_problem("apps", "Deployment", &"a".repeat(254)).is_some());
        assert!(object_name_problem("", "Namespace", "a.b").is_some());
        assert!(object_name_problem("", "Service", "1web").is_some());
        assert_eq!(
            object_name_problem("rbac.authorization.k8s.io", "ClusterRole", "system:view"),
            None
        );
        assert!(object_name_problem("rbac.authorization.k8s.io", "Role", "..").is_some());
        assert!(object_name_problem("rbac.authorization.k8s.io", "Role", "a/b").is_some());
        assert!(
            is_dns1123_label("dev") && !is_dns1123_label("../escape") && !is_dns1123_label("/abs")
        );
        assert!(is_kind("ServiceMonitor") && !is_kind("a/b") && !is_kind("..") && !is_kind(""));
        assert!(is_api_version("v1") && is_api_version("apps/v1") && !is_api_version("../v1"));
    }

    #[test]
    fn label_values_are_safe() {
        assert_eq!(label_value("v1.0.86"), "v1.0.86");
        assert_eq!(label_value("feature/new-login"), "feature-new-login");
        assert_eq!(label_value("-x-"), "x");
        assert_eq!(label_value(&"a".repeat(80)).len(), 63);
    }
}
