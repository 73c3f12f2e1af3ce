//! Kubernetes names and label values derived from controlcenter.yaml keys.

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

/// Whether `s` is a DNS-1035 label.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
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

/// Whether an image reference is mutable: tagged `latest` or not tagged,
/// and not pinned by digest.
pub fn is_mutable_image(image: &str) -> bool {
    if image.contains('@') {
        return false;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag == "latest",
        None => true,
    }
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
    fn label_values_are_safe() {
        assert_eq!(label_value("v1.0.86"), "v1.0.86");
        assert_eq!(label_value("feature/new-login"), "feature-new-login");
        assert_eq!(label_value("-x-"), "x");
        assert_eq!(label_value(&"a".repeat(80)).len(), 63);
    }

    #[test]
    fn mutable_images() {
        assert!(is_mutable_image("reg.io/app:latest"));
        assert!(is_mutable_image("reg.io:5000/app"));
        assert!(!is_mutable_image("reg.io:5000/app:1.2"));
        assert!(!is_mutable_image(
            "reg.io/app:latest@sha256:0000000000000000000000000000000000000000000000000000000000000000"
        ));
    }
}
