//! What services resolved to, by what resolving them read.
//!
//! A warm render of thousands of services, one of them edited, resolved
//! every one only to hash its state into its unit's cache key: a fifth of
//! its time. Resolving a service reads its own entry of the environment's
//! section, its entry of tags.yaml, and a context shared by every service
//! (the build, the repository's schema extension, `settings`, `defaults`,
//! the environment and its Terraform outputs). So once a render has
//! resolved a service, the cache keeps, under a digest of the exact text
//! of all that, the digest of the state it resolved to
//! ([`service_digest`]), which is what its unit's key
//! hashes. A later render whose inputs hash the same takes that digest
//! and leaves the service unresolved; should its unit not be in the cache
//! after all, the render resolves the environment again, every service.
//!
//! Nothing is memoized, and every service resolved, when an input is not
//! plain enough to cut into entries by their keys' positions: when the
//! schema extension declares secret (`writeOnly`) fields, when
//! controlcenter.d/ is merged in, when controlcenter.yaml or tags.yaml
//! holds an anchor, an alias or a merge key, or when a mapping repeats a
//! key. A service is kept only when it resolved without a diagnostic.

use std::sync::Arc;

use foldhash::{HashMap, HashMapExt as _};
use sha2::{Digest, Sha256};

use crate::diagnostics::{FileId, Sources};
use crate::evaluate::cache::{self, Cache};
use crate::load::yaml::Entry;
use crate::load::{Input, RepoInputs, DEFAULTS_KEY, SETTINGS_KEY};
use crate::resolve::ServiceState;

/// First word of what every memo key hashes; changes whenever what
/// resolving a service reads does.
const FORMAT: &str = "controlcenter-service-memo-1";

/// First word of what every validity key hashes; changes whenever what
/// validating an entry means does.
const VALID_FORMAT: &str = "controlcenter-entry-valid-1";

/// Bytes of one memo entry: the digest of a service's inputs, then the
/// digest of its state.
pub const ENTRY_BYTES: usize = 64;

/// The memo of one environment, as the last render that stored it left it.
pub struct ServiceMemo {
    cache: Arc<Cache>,
    /// The memo's file name: the environment under this build.
    name: String,
    /// The memo's body as read ([`parse`] holds), empty when there was
    /// none: how many services, each service's input key then state
    /// digest (sorted by key), then the validity keys ([`validity_keys`])
    /// of entries found valid (sorted).
    body: Vec<u8>,
    /// How many services it holds.
    services: usize,
}

impl ServiceMemo {
    /// The memo of `env` in `cache` (empty when there is none, or it is
    /// damaged); `None` when services of this repository are not memoized
    /// at all (see the module's documentation).
    ///
    /// The memo is named by what all of the section's entries share that
    /// controlcenter.yaml says (the build, the environment, the schema
    /// extension, `settings`, `defaults`, the section's header): renders
    /// of repositories or branches that differ there, sharing a cache,
    /// keep a memo each instead of replacing each other's.
    pub fn open(
        cache: Arc<Cache>,
        inputs: &RepoInputs,
        sources: &Sources,
        env: &str,
    ) -> Option<Self> {
        let schema_has_secrets = inputs
            .service_schema
            .as_ref()
            .is_some_and(crate::validate::schema::declares_write_only);
        if schema_has_secrets {
            return None;
        }
        let sections = Sections::of(inputs, sources)?;
        let (_, _, header) = sections.section(env)?;
        let mut h = Sha256::new();
        hash_parts(
            &mut h,
            &[FORMAT, cache::build_id(), env, &schema_text(inputs)],
        );
        sections.hash_shared(&mut h, header)?;
        let name = cache::hex_digest(h);
        let (body, services) = cache
            .memo(&name)
            .and_then(|body| {
                let services = parse(&body)?.0.len();
                Some((body, services))
            })
            .unwrap_or_default();
        Some(ServiceMemo {
            cache,
            name,
            body,
            services,
        })
    }

    /// Each service's entry, and the validity keys, as found (the body
    /// was parsed once, when read).
    fn found(&self) -> (&[[u8; ENTRY_BYTES]], &[[u8; 32]]) {
        let rest = self.body.get(8..).unwrap_or_default();
        let (found, valid) = rest
            .split_at_checked(self.services * ENTRY_BYTES)
            .unwrap_or_default();
        (found.as_chunks().0, valid.as_chunks().0)
    }

    /// Whether the entry whose validity key is `key` was found valid.
    pub fn found_valid(&self, key: &[u8; 32]) -> bool {
        self.found().1.binary_search(key).is_ok()
    }

    /// The digest of the state a service resolved to, by the key of its
    /// inputs ([`MemoContext::key`]).
    pub fn get(&self, key: &[u8; 32]) -> Option<[u8; 32]> {
        let found = self.found().0;
        let at = found
            .binary_search_by(|e| e[..32].cmp(key.as_slice()))
            .ok()?;
        Some(digest_array(&found[at][32..]))
    }

    /// Stores what this render resolved (each service's input key then
    /// state digest: [`entry`]), but the services whose state digest is in
    /// `uncached` (their units are not in the cache), and the validity
    /// keys of the entries it found valid (`None`: those found before),
    /// when they differ from what was found.
    pub fn store(
        &self,
        resolved: &mut Vec<[u8; ENTRY_BYTES]>,
        uncached: &std::collections::HashSet<[u8; 32]>,
        valid: Option<&mut [[u8; 32]]>,
    ) {
        if !uncached.is_empty() {
            resolved.retain(|e| !uncached.contains(&digest_array(&e[32..])));
        }
        resolved.sort_unstable();
        let (found, found_valid) = self.found();
        let valid: &[[u8; 32]] = match valid {
            Some(v) => {
                v.sort_unstable();
                v
            }
            None => found_valid,
        };
        let unique = resolved.windows(2).all(|w| w[0][..32] < w[1][..32])
            && valid.windows(2).all(|w| w[0] < w[1]);
        let same = resolved == found && valid == found_valid;
        if same {
            // Used: the oldest memos are the ones let go.
            self.cache.touch_memo(&self.name);
        }
        if !unique || same || resolved.is_empty() {
            return;
        }
        let count = (resolved.len() as u64).to_le_bytes();
        let body = [&count[..], resolved.as_flattened(), valid.as_flattened()];
        self.cache.store_memo(&self.name, &body);
    }
}

/// A memo's body: how many services it holds, each service's entry, then
/// the validity keys; `None` unless it is exactly that, each part sorted
/// (it is looked up by halving).
fn parse(body: &[u8]) -> Option<(&[[u8; ENTRY_BYTES]], &[[u8; 32]])> {
    let (count, rest) = body.split_first_chunk::<8>()?;
    let services = usize::try_from(u64::from_le_bytes(*count)).ok()?;
    let (found, valid) = rest.split_at_checked(services.checked_mul(ENTRY_BYTES)?)?;
    let (found, no_rest) = found.as_chunks::<ENTRY_BYTES>();
    let (valid, rest) = valid.as_chunks::<32>();
    let sorted =
        found.windows(2).all(|w| w[0][..32] < w[1][..32]) && valid.windows(2).all(|w| w[0] < w[1]);
    (no_rest.is_empty() && rest.is_empty() && sorted).then_some((found, valid))
}

/// A memo entry: a service's input key, then the digest of its state.
pub fn entry(key: &[u8; 32], digest: &[u8; 32]) -> [u8; ENTRY_BYTES] {
    let mut e = [0; ENTRY_BYTES];
    e[..32].copy_from_slice(key);
    e[32..].copy_from_slice(digest);
    e
}

/// What every service of one environment's resolution shares, hashed, and
/// the text of each service's own inputs: what its memo key covers.
pub struct MemoContext<'t> {
    shared: Sha256,
    /// controlcenter.yaml's text.
    text: &'t str,
    /// tags.yaml's text (empty without one).
    tags_text: &'t str,
    /// Each entry of the environment's section: its text, by key.
    entries: HashMap<&'t str, &'t str>,
    /// Each entry of tags.yaml: its text, by key.
    tags: HashMap<&'t str, &'t str>,
}

impl<'t> MemoContext<'t> {
    /// The context of resolving `env` (its Terraform outputs as the
    /// resolver gives them to services, `terraform`), when its inputs are
    /// plain enough to cut into entries.
    pub fn new(
        inputs: &'t RepoInputs,
        sources: &'t Sources,
        env: &str,
        terraform: Option<&serde_json::Value>,
    ) -> Option<Self> {
        let sections = Sections::of(inputs, sources)?;
        let (entries, texts, header) = sections.section(env)?;
        let entries = by_key(entries, texts)?;
        // tags.yaml's entries, and its text before them.
        let (tags, tags_text, tags_preamble) = match &inputs.tags {
            Some(t) => {
                let text: &'t str = &sources.get(t.file).text;
                match t.root.as_map() {
                    Some(map) => {
                        let texts = entry_texts(map, t.file, text, text.len())?;
                        let first = map.first().map_or(text.len(), |e| e.key_span.start);
                        (by_key(map, texts)?, text, text.get(..first)?)
                    }
                    // Not a mapping: every lookup fails, and is not kept.
                    None => (HashMap::new(), text, text),
                }
            }
            None => (HashMap::new(), "", "no tags.yaml"),
        };
        let mut shared = Sha256::new();
        let terraform = terraform.map_or_else(String::new, ToString::to_string);
        hash_parts(
            &mut shared,
            &[
                FORMAT,
                cache::build_id(),
                env,
                &schema_text(inputs),
                &terraform,
            ],
        );
        sections.hash_shared(&mut shared, header)?;
        hash_pieces(&mut shared, tags_text, &[tags_preamble]);
        Some(MemoContext {
            shared,
            text: sections.text,
            tags_text,
            entries,
            tags,
        })
    }

    /// The memo key of service `key`: `None` when it has no entry of its
    /// own in the section (it comes from `defaults` alone).
    pub fn key(&self, key: &str) -> Option<[u8; 32]> {
        let entry = self.entries.get(key)?;
        let tags = self.tags.get(key);
        let mut h = self.shared.clone();
        hash_parts(&mut h, &[key]);
        hash_pieces(&mut h, self.text, &[entry]);
        hash_pieces(&mut h, self.tags_text, &[tags.copied().unwrap_or("")]);
        h.update([u8::from(tags.is_some())]);
        Some(digest_array(&h.finalize()))
    }
}

/// The key of each entry of `env`'s section (in order) under which the
/// memo says it was found valid: a digest of what validating it reads
/// (the build, the schema extension, the environment, and the entry's
/// text). `None` when the file is not plain enough to cut into entries.
pub fn validity_keys(inputs: &RepoInputs, sources: &Sources, env: &str) -> Option<Vec<[u8; 32]>> {
    let sections = Sections::of(inputs, sources)?;
    let (entries, texts, _) = sections.section(env)?;
    let mut shared = Sha256::new();
    hash_parts(
        &mut shared,
        &[VALID_FORMAT, cache::build_id(), env, &schema_text(inputs)],
    );
    hash_pieces(&mut shared, sections.text, &[sections.preamble]);
    let keys = entries
        .iter()
        .zip(texts)
        .map(|(e, text)| {
            let mut h = shared.clone();
            hash_parts(&mut h, &[e.key.as_str()]);
            hash_pieces(&mut h, sections.text, &[text]);
            h.finalize().into()
        })
        .collect();
    Some(keys)
}

/// Hashes each of `pieces` of `file` ([`hash_parts`]) and whether it runs
/// to the end of the file: what a value means can depend on it (an empty
/// block scalar, `key: |`, is a line break at the end of the file and
/// empty before another key).
pub fn hash_pieces(h: &mut Sha256, file: &str, pieces: &[&str]) {
    let file_end = file.as_ptr().wrapping_add(file.len());
    for piece in pieces {
        hash_parts(h, &[piece]);
        let to_end = !file.is_empty() && piece.as_ptr().wrapping_add(piece.len()) == file_end;
        h.update([u8::from(to_end)]);
    }
}

/// Hashes each of `parts` after its length: no two lists of parts hash
/// alike.
fn hash_parts(h: &mut Sha256, parts: &[&str]) {
    for part in parts {
        h.update(part.len().to_le_bytes());
        h.update(part.as_bytes());
    }
}

/// The repository's schema extension as every key hashes it.
fn schema_text(inputs: &RepoInputs) -> String {
    inputs
        .service_schema
        .as_ref()
        .map_or_else(|| "absent".to_owned(), ToString::to_string)
}

/// controlcenter.yaml cut into its top-level sections by their keys'
/// positions, when nothing in it or tags.yaml may be copied from
/// elsewhere and it is the configuration's one file.
struct Sections<'t> {
    text: &'t str,
    /// What comes before the first key (comments, directives).
    preamble: &'t str,
    root: &'t [Entry],
    file: FileId,
    /// Every top-level key's start, parsed or left out, in order: each
    /// section's text runs to the next one's key.
    starts: Vec<usize>,
}

impl<'t> Sections<'t> {
    fn of(inputs: &'t RepoInputs, sources: &'t Sources) -> Option<Self> {
        let cc = &inputs.controlcenter;
        if inputs.split || !plain(cc) || inputs.tags.as_ref().is_some_and(|t| !plain(t)) {
            return None;
        }
        let root = cc.root.as_map()?;
        let mut starts: Vec<usize> = root
            .iter()
            .map(|e| e.key_span)
            .chain(inputs.left_out.iter().map(|s| s.key_span))
            .map(|s| (s.file == cc.file).then_some(s.start))
            .collect::<Option<_>>()?;
        starts.sort_unstable();
        let text: &'t str = &sources.get(cc.file).text;
        Some(Sections {
            preamble: text.get(..starts.first().copied().unwrap_or(text.len()))?,
            text,
            root,
            file: cc.file,
            starts,
        })
    }

    /// Where the section whose key starts at `start` ends.
    fn end_of(&self, start: usize) -> usize {
        self.starts
            .iter()
            .copied()
            .find(|s| *s > start)
            .unwrap_or(self.text.len())
    }

    /// The text of section `key` (empty when there is none).
    fn text_of(&self, key: &str) -> Option<&'t str> {
        let Some(e) = self.root.iter().find(|e| e.key == key) else {
            return Some("");
        };
        self.text
            .get(e.key_span.start..self.end_of(e.key_span.start))
    }

    /// Hashes what every entry of a section shares that the file says:
    /// the text before its keys, `settings`, `defaults`, and the section's
    /// `header`.
    fn hash_shared(&self, h: &mut Sha256, header: &str) -> Option<()> {
        let pieces = [
            self.preamble,
            self.text_of(SETTINGS_KEY)?,
            self.text_of(DEFAULTS_KEY)?,
            header,
        ];
        hash_pieces(h, self.text, &pieces);
        Some(())
    }

    /// Section `env`'s entries, the text of each (in order), and the
    /// section's header (from its key to its first entry's).
    fn section(&self, env: &str) -> Option<(&'t [Entry], Vec<&'t str>, &'t str)> {
        let section = self.root.iter().find(|e| e.key == env)?;
        let end = self.end_of(section.key_span.start);
        let entries = section.value.as_map()?;
        let texts = entry_texts(entries, self.file, self.text, end)?;
        let first = entries.first().map_or(end, |e| e.key_span.start);
        let header = self.text.get(section.key_span.start..first)?;
        Some((entries, texts, header))
    }
}

/// The digest of service `key`'s state, as its unit's cache key hashes
/// it (secrets included, and which values are secret:
/// [`crate::redact::write_keyed`]); `None` when it cannot be written.
pub fn service_digest(key: &str, service: &ServiceState) -> Option<[u8; 32]> {
    let mut bytes = Vec::new();
    crate::redact::write_keyed(&("service", key, service), &mut bytes).ok()?;
    Some(Sha256::digest(&bytes).into())
}

/// Whether nothing in `input` is copied from elsewhere in it (no anchor,
/// alias or merge key): each entry's value is its own text's.
fn plain(input: &Input) -> bool {
    let c = &input.copies;
    c.aliases.is_empty() && c.anchored.is_empty() && c.merged.is_empty()
}

/// The text of each of `entries` in `text` (from its key to the next
/// entry's key, the last to `end`), in order; `None` unless every key is
/// in `file`, in increasing order.
fn entry_texts<'t>(
    entries: &[Entry],
    file: FileId,
    text: &'t str,
    end: usize,
) -> Option<Vec<&'t str>> {
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let next = entries.get(i + 1).map_or(end, |n| n.key_span.start);
            if e.key_span.file != file || next <= e.key_span.start {
                return None;
            }
            text.get(e.key_span.start..next)
        })
        .collect()
}

/// `texts` (one per entry) by their entries' keys; `None` when a key
/// repeats.
fn by_key<'t>(entries: &'t [Entry], texts: Vec<&'t str>) -> Option<HashMap<&'t str, &'t str>> {
    let mut map = HashMap::with_capacity(entries.len());
    for (e, text) in entries.iter().zip(texts) {
        if map.insert(e.key.as_str(), text).is_some() {
            return None;
        }
    }
    Some(map)
}

fn digest_array(bytes: &[u8]) -> [u8; 32] {
    let mut a = [0; 32];
    a.copy_from_slice(&bytes[..32]);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CC: &str = "settings:\n  part_of: shop\ndefaults:\n  log_level: info\ndev:\n  a:\n    git_rev: v1\n  b:\n    git_rev: v2\n    replicas: 2\nprod:\n  a:\n    git_rev: v1\n";
    const TAGS: &str = "a:\n  v1: r.io/a:1\nb:\n  v2: r.io/b:2\n";

    /// The memo keys of `dev`'s services `a` and `b`; `None` without a
    /// context.
    fn keys(cc: &str, tags: &str, terraform: &serde_json::Value) -> Option<[[u8; 32]; 2]> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("controlcenter.yaml"), cc).unwrap();
        std::fs::write(dir.path().join("tags.yaml"), tags).unwrap();
        let repo = crate::repo::WorkTree::open(dir.path()).unwrap();
        let mut sources = Sources::default();
        let inputs = crate::load::load_repo(&repo, &mut sources).unwrap();
        let context = MemoContext::new(&inputs, &sources, "dev", Some(terraform))?;
        Some([context.key("a")?, context.key("b")?])
    }

    #[test]
    fn a_service_s_key_moves_with_what_resolving_it_reads_and_only_that() {
        let tf = json!({"irsa_role_arns": {"a": "arn:1"}});
        let [a, b] = keys(CC, TAGS, &tf).unwrap();
        assert_ne!(a, b);
        assert_eq!(keys(CC, TAGS, &tf), Some([a, b]));
        // Its own entry, or its entry of tags.yaml: that service alone.
        let own = keys(&CC.replace("replicas: 2", "replicas: 3"), TAGS, &tf).unwrap();
        assert_eq!(own[0], a);
        assert_ne!(own[1], b);
        let tagged = keys(CC, &TAGS.replace("b:2", "b:3"), &tf).unwrap();
        assert_eq!(tagged[0], a);
        assert_ne!(tagged[1], b);
        // Another environment's section: neither.
        let prod = "prod:\n  a:\n    git_rev: v1\n";
        let other = keys(
            &CC.replace(prod, &format!("{prod}    port: 1\n")),
            TAGS,
            &tf,
        )
        .unwrap();
        assert_eq!(other, [a, b]);
        // What every service reads: both.
        let shared = [
            keys(&CC.replace("part_of: shop", "part_of: shop2"), TAGS, &tf),
            keys(
                &CC.replace("log_level: info", "log_level: debug"),
                TAGS,
                &tf,
            ),
            keys(&CC.replace("dev:\n", "dev: # the services\n"), TAGS, &tf),
            keys(CC, TAGS, &json!({"irsa_role_arns": {"a": "arn:2"}})),
        ];
        for moved in shared {
            let [a2, b2] = moved.unwrap();
            assert!(a2 != a && b2 != b);
        }
    }

    #[test]
    fn no_context_when_a_value_may_be_copied_from_elsewhere() {
        let tf = json!({});
        assert!(keys(&CC.replace("git_rev: v2", "git_rev: &rev v2"), TAGS, &tf).is_none());
        assert!(keys(CC, &TAGS.replace("v2: ", "v2: &image "), &tf).is_none());
        let merged = CC.replace("    replicas: 2", "    <<: {port: 81}\n    replicas: 2");
        assert!(keys(&merged, TAGS, &tf).is_none());
    }

    #[test]
    fn a_memo_is_read_back_exactly_and_a_damaged_or_unsorted_one_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(Cache::new(dir.path().to_owned()));
        let repo_dir = tempfile::tempdir().unwrap();
        std::fs::write(repo_dir.path().join("controlcenter.yaml"), CC).unwrap();
        let repo = crate::repo::WorkTree::open(repo_dir.path()).unwrap();
        let mut sources = Sources::default();
        let inputs = crate::load::load_repo(&repo, &mut sources).unwrap();
        let open = || ServiceMemo::open(cache.clone(), &inputs, &sources, "dev").unwrap();
        let mut entries: Vec<[u8; ENTRY_BYTES]> = (0..200u8)
            .map(|i| entry(&[i.wrapping_mul(37); 32], &[i; 32]))
            .collect();
        let mut valid: Vec<[u8; 32]> = (0..50u8).map(|i| [i.wrapping_mul(91); 32]).collect();
        open().store(
            &mut entries,
            &std::collections::HashSet::new(),
            Some(&mut valid),
        );
        let memo = open();
        for i in 0..200u8 {
            assert_eq!(memo.get(&[i.wrapping_mul(37); 32]), Some([i; 32]));
        }
        let mut absent = [0; 32];
        absent[31] = 1;
        assert_eq!(memo.get(&absent), None);
        assert!((0..50u8).all(|i| memo.found_valid(&[i.wrapping_mul(91); 32])));
        assert!(!memo.found_valid(&absent));

        let path = dir.path().join("memos").join(&memo.name);
        let bytes = std::fs::read(&path).unwrap();
        let mut flipped = bytes.clone();
        flipped[100] ^= 0x20;
        for damaged in [bytes[..bytes.len() - 1].to_vec(), flipped, Vec::new()] {
            std::fs::write(&path, damaged).unwrap();
            assert!(open().found().0.is_empty());
        }
        // Stored unsorted (by another build, or by hand), with a valid
        // checksum: not one.
        let mut body = (entries.len() as u64).to_le_bytes().to_vec();
        body.extend_from_slice(entries.as_flattened());
        body.extend_from_slice(valid.as_flattened());
        cache.store_memo(&memo.name, &[&body]);
        assert_eq!(open().found().0.len(), entries.len());
        body[8..].rotate_left(ENTRY_BYTES);
        cache.store_memo(&memo.name, &[&body]);
        assert!(open().found().0.is_empty());
        // A count past the body.
        body[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        cache.store_memo(&memo.name, &[&body]);
        assert!(open().found().0.is_empty());
    }
}
