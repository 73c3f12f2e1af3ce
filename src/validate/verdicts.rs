//! Verdicts on the sections of controlcenter.yaml that a run does not
//! render.
//!
//! A render of one environment must still refuse a broken section of any
//! other (a prod edit lands on the dev branch first, and dev's CI must
//! catch it). Yet the other sections rarely change between two renders:
//! a section whose exact text was found valid before, under the same
//! build and schema, is valid now. So once a render has validated the
//! whole file, the cache keeps a verdict per other environment's section,
//! keyed by a digest of everything its validation read: the build, the
//! repository's schema extension, the `settings` and `defaults` sections,
//! and the section's own text. A later render leaves a section with a
//! verdict out of the tree: it is neither parsed nor validated again.
//!
//! No verdict is kept, and nothing left out, when the validation of a
//! section reads more than that: when the schema declares secret
//! (`writeOnly`) fields (their values are registered from every section,
//! so no message can show them), when controlcenter.d/ is merged in, when
//! a section holds an anchor, an alias or a merge key, or when the file's top level is
//! not written plainly enough to find its sections without parsing. A
//! verdict keeps how many values its section holds: the document's limit
//! counts them when the section is left out.

use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::evaluate::cache::{self, Cache};
use crate::load::yaml::{self, Section};
use crate::load::{RepoInputs, DEFAULTS_KEY, SETTINGS_KEY};
use crate::repo::layout::SERVICE_SCHEMA_FILE;
use crate::repo::RepoFiles;
use crate::resolve::memo::hash_pieces;

/// First word of what every verdict key hashes; changes whenever what
/// validating a section means does.
const FORMAT: &str = "controlcenter-section-verdict-2";

/// The verdicts of one run, which renders `env`.
pub struct SectionVerdicts {
    cache: Arc<Cache>,
    env: String,
    /// What every key covers besides the sections: the format, the build
    /// and the repository's schema extension.
    base: Sha256,
    /// The sections of the last text given to [`Self::leave_out`], and
    /// the key of each that may be left out.
    seen: Mutex<Option<Seen>>,
}

struct Seen {
    sections: Vec<Section>,
    keyed: Vec<(Section, String)>,
}

impl SectionVerdicts {
    /// The verdicts of a run rendering `env` with `cache`; `None` when
    /// the repository's schema extension declares secret fields, or
    /// cannot be read (the load then says why).
    pub fn new(repo: &dyn RepoFiles, cache: Arc<Cache>, env: &str) -> Option<Self> {
        let schema = match repo.read(SERVICE_SCHEMA_FILE) {
            Ok(Some(bytes)) => {
                let json: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
                if super::schema::declares_write_only(&json) {
                    return None;
                }
                cache::digest(&bytes)
            }
            Ok(None) => "absent".to_owned(),
            Err(_) => return None,
        };
        let mut base = Sha256::new();
        for part in [FORMAT, cache::build_id(), &schema] {
            base.update(part.as_bytes());
            base.update([0]);
        }
        Some(SectionVerdicts {
            cache,
            env: env.to_owned(),
            base,
            seen: Mutex::new(None),
        })
    }

    /// The sections of controlcenter.yaml's `text` to leave out: other
    /// environments' sections that have a verdict, with the values each
    /// holds.
    pub fn leave_out(&self, text: &str) -> Vec<(Section, usize)> {
        let Some(sections) = yaml::sections(text) else {
            return Vec::new();
        };
        let mut keys = std::collections::HashSet::new();
        if !sections.iter().all(|s| keys.insert(s.key.as_str()))
            || !keys.contains(self.env.as_str())
        {
            return Vec::new();
        }
        let text_of = |key: &str| {
            sections
                .iter()
                .find(|s| s.key == key)
                .map_or("", |s| &text[s.range.clone()])
        };
        // Each text with whether it runs to the end of the file, which an
        // empty block scalar's value depends on.
        let mut shared = self.base.clone();
        hash_pieces(
            &mut shared,
            text,
            &[text_of(SETTINGS_KEY), text_of(DEFAULTS_KEY)],
        );
        let keyed: Vec<(Section, String)> = sections
            .iter()
            .filter(|s| ![self.env.as_str(), SETTINGS_KEY, DEFAULTS_KEY].contains(&s.key.as_str()))
            .filter_map(|s| {
                let mut h = shared.clone();
                h.update(s.key.as_bytes());
                h.update([0]);
                hash_pieces(&mut h, text, &[text.get(s.range.clone())?]);
                Some((s.clone(), cache::hex_digest(h)))
            })
            .collect();
        let left_out = keyed
            .iter()
            .filter_map(|(s, key)| Some((s.clone(), self.cache.verdict(key)?)))
            .collect();
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(Seen { sections, keyed });
        }
        left_out
    }

    /// Keeps a verdict for each other environment's section of
    /// `inputs`, validated whole: those parsed (not left out) that hold
    /// no anchor, alias or merge key, when the sections found in the text are the
    /// ones the parse found.
    pub fn store(&self, inputs: &RepoInputs) {
        let Some(seen) = self.seen.lock().ok().and_then(|mut s| s.take()) else {
            return;
        };
        let mut parsed: Vec<(&str, usize)> = inputs
            .controlcenter
            .root
            .as_map()
            .unwrap_or_default()
            .iter()
            .map(|e| (e.key.as_str(), e.key_span.start))
            .chain(
                inputs
                    .left_out
                    .iter()
                    .map(|s| (s.key.as_str(), s.key_span.start)),
            )
            .collect();
        parsed.sort_by_key(|(_, start)| *start);
        let found: Vec<(&str, usize)> = seen
            .sections
            .iter()
            .map(|s| (s.key.as_str(), s.key_start))
            .collect();
        if parsed != found {
            return;
        }
        let copies = &inputs.controlcenter.copies;
        let root = &inputs.controlcenter.root;
        // Those parsed (a section left out is not in the tree).
        let verdicts: Vec<(String, usize)> = seen
            .keyed
            .into_iter()
            .filter(|(s, _)| !copies.reach_into(&s.range))
            .filter_map(|(s, key)| Some((key, yaml::count_values(root.get(&s.key)?))))
            .filter(|(key, _)| self.cache.verdict(key).is_none())
            .collect();
        self.cache.store_verdicts(&verdicts);
    }
}
