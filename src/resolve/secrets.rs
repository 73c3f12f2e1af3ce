//! SealedSecrets of one environment from secrets.yaml. A value that does
//! not look like kubeseal output is refused, so plaintext never reaches a
//! manifest; the refusal never quotes the value.

use std::collections::BTreeMap;

use base64::Engine as _;

use super::state::SealedSecretState;
use crate::diagnostics::{Code, Diagnostic};
use crate::load::yaml::Node;
use crate::load::Input;
use crate::repo::layout::SECRETS_FILE;

/// The SealedSecrets of `env` (an absent section means none).
pub fn sealed_secrets(
    file: &Input,
    env: &str,
    default_namespace: &str,
) -> Result<BTreeMap<String, SealedSecretState>, Vec<Diagnostic>> {
    let mut out = BTreeMap::new();
    let mut diags = Vec::new();
    let Some(section) = file.root.get(env) else {
        return Ok(out);
    };
    for e in section.as_map().unwrap_or_default() {
        let s = &e.value;
        let mut data = BTreeMap::new();
        for d in s
            .get("encryptedData")
            .and_then(Node::as_map)
            .unwrap_or_default()
        {
            let value = d.value.as_str().unwrap_or_default();
            if !looks_sealed(value) {
                diags.push(
                    Diagnostic::error(
                        Code::SecretNotSealed,
                        format!("{SECRETS_FILE}: `{env}.{}.encryptedData.{}` is not a SealedSecret ciphertext", e.key, d.key),
                    )
                    .at(d.key_span, "this value is not sealed (value not shown)")
                    .help("seal it with `kubeseal --raw` for this namespace and name; never commit plaintext"),
                );
                continue;
            }
            data.insert(d.key.clone(), value.to_owned());
        }
        out.insert(
            e.key.clone(),
            SealedSecretState {
                namespace: s
                    .get("namespace")
                    .and_then(Node::as_str)
                    .unwrap_or(default_namespace)
                    .to_owned(),
                secret_type: s
                    .get("type")
                    .and_then(Node::as_str)
                    .unwrap_or("Opaque")
                    .to_owned(),
                encrypted_data: data,
            },
        );
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}

/// kubeseal's format: base64 of a 2-byte big-endian length n of the
/// RSA-OAEP-encrypted session key (256 or 512 bytes for 2048/4096-bit keys,
/// 384 for 3072), the key, then AES-GCM ciphertext with its 16-byte tag.
pub fn looks_sealed(value: &str) -> bool {
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(value.trim()) else {
        return false;
    };
    if raw.len() < 2 {
        return false;
    }
    let n = u16::from_be_bytes([raw[0], raw[1]]) as usize;
    matches!(n, 256 | 384 | 512) && raw.len() >= 2 + n + 16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_kubeseal_shaped_values_pass() {
        let mut blob = vec![0x02, 0x00];
        blob.extend(std::iter::repeat_n(7u8, 512 + 40));
        let sealed = base64::engine::general_purpose::STANDARD.encode(&blob);
        assert!(looks_sealed(&sealed));
        assert!(!looks_sealed("hunter2"));
        assert!(!looks_sealed(
            &base64::engine::general_purpose::STANDARD.encode(b"password")
        ));
    }
}
