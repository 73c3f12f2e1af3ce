//! No panics on any input: a mutation harness over the real inputs.
//!
//! Seeds are every input file of the examples and error fixtures. Each case
//! picks a seed repository, mutates one of its files (byte flips, YAML
//! punctuation, deleted or duplicated ranges, re-indented lines, truncation,
//! spliced text from another file) and runs load → validate → resolve →
//! render in process. Every outcome must be a value or diagnostics; a panic
//! fails the test and prints the seed that reproduces it.
//!
//! Every seed also carries a canary in secret positions (an extra
//! sensitive Terraform output in each env file, an extra secrets.yaml
//! section): whenever the mutation leaves those positions declared secret
//! (it changed another file, or broke the sensitive file so it does not
//! parse), no diagnostic in any format, no state and no output may show it.
//! Rendered cases are also written with `--out-dir`'s writer into a fresh
//! directory, and nothing may appear outside it.
//!
//! `cargo test --test integration fuzz` runs a bounded number of cases; a longer run:
//! `CC_FUZZ_CASES=200000 cargo test --release --test integration fuzz -- --nocapture`
//! (`CC_FUZZ_SEED=N` replays one case).

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use controlcenter::evaluate::library::EmbeddedLibrary;
use controlcenter::evaluate::Limits;
use controlcenter::repo::{normalize, ReadError, RepoFiles};
use controlcenter::Project;

/// A repository held in memory.
#[derive(Clone)]
struct MemRepo(BTreeMap<String, Vec<u8>>);

impl RepoFiles for MemRepo {
    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, ReadError> {
        let rel = normalize(rel).ok_or(ReadError::OutsideRepo)?;
        Ok(self.0.get(&rel).cloned())
    }
}

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn load_dir(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let path = entry.path();
        // A fixture's case.json is the test's, not the repository's: left
        // out so that a recorded CC_FUZZ_SEED still makes the same case.
        if path.is_symlink() || name == "case.json" {
            continue;
        } else if path.is_dir() {
            load_dir(&path, &format!("{name}/"), out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.insert(name, bytes);
        }
    }
}

/// Planted in every secret position of the seeds.
const CANARY: &str = "FUZZCANARY7Q";

/// Whether a repo file may hold secrets.
fn is_sensitive(name: &str) -> bool {
    name == "secrets.yaml" || (name.starts_with("env-") && !name.contains('/'))
}

/// A seed with a canary in a secret position of each sensitive file.
fn planted(seed: &MemRepo) -> MemRepo {
    let mut repo = seed.clone();
    for (name, data) in repo.0.iter_mut().filter(|(n, _)| is_sensitive(n)) {
        if name == "secrets.yaml" {
            data.extend_from_slice(
                format!("\nfuzzenv:\n  s:\n    stringData:\n      k: {CANARY}\n").as_bytes(),
            );
        } else if data.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
            let at = data.iter().position(|b| *b == b'{').unwrap_or(0) + 1;
            let entry = format!("\"fuzz_secret\": {{\"sensitive\": true, \"type\": \"string\", \"value\": \"{CANARY}\"}},");
            data.splice(at..at, entry.bytes());
        } else {
            data.extend_from_slice(
                format!("\nfuzz_secret:\n  sensitive: true\n  value: {CANARY}\n").as_bytes(),
            );
        }
    }
    repo
}

fn seeds() -> Vec<MemRepo> {
    let mut dirs = common::examples();
    let fixtures = common::root().join("tests/fixtures/errors");
    dirs.extend(
        std::fs::read_dir(fixtures)
            .unwrap()
            .flatten()
            .map(|e| e.path()),
    );
    dirs.sort();
    dirs.into_iter()
        .map(|d| {
            let mut files = BTreeMap::new();
            load_dir(&d, "", &mut files);
            MemRepo(files)
        })
        .collect()
}

const TOKENS: &[&str] = &[
    ":",
    "- ",
    "\t",
    "\n",
    "  ",
    "&a ",
    "*a",
    "<<: *a\n",
    "{",
    "}",
    "[",
    "]",
    "'",
    "\"",
    "#",
    "|\n",
    ">-\n",
    "!!str ",
    "!Ref ",
    "---\n",
    "...\n",
    "?",
    "%YAML 1.2\n",
    "\\u0000",
    "\u{feff}",
    "é",
    "~",
    "null",
    "yes",
    "0x",
    "1e400",
    "-.inf",
    ".nan",
    "enabled: false",
    "git_rev: ",
    "replicas: -1",
    "params:",
    "terraform:",
    "value:",
    "sensitive: true",
    "encryptedData:",
    "\u{0}",
    "\r\n",
    "9999999999999999999999",
];

/// Mutates one file of `repo` (with text from `donor`); returns its name.
fn mutate(rng: &mut Rng, repo: &mut MemRepo, donor: &MemRepo) -> String {
    let names: Vec<String> = repo.0.keys().cloned().collect();
    let name = names[rng.below(names.len())].clone();
    let donor_bytes: Vec<u8> = donor
        .0
        .values()
        .nth(rng.below(donor.0.len()))
        .cloned()
        .unwrap_or_default();
    let data = repo.0.get_mut(&name).unwrap();
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        let at = rng.below(len + 1);
        match rng.below(8) {
            0 if len > 0 => data[at.min(len - 1)] ^= 1 << rng.below(8),
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                data.splice(at..at, t.iter().copied());
            }
            2 if len > 0 => {
                let end = (at + 1 + rng.below(40)).min(len);
                data.drain(at.min(end)..end);
            }
            3 if len > 0 => {
                let end = (at + 1 + rng.below(80)).min(len);
                let chunk: Vec<u8> = data[at.min(end)..end].to_vec();
                data.splice(at..at, chunk);
            }
            4 => data.truncate(at),
            5 => {
                // Re-indent a line.
                let line_start = data[..at]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |i| i + 1);
                let spaces = rng.below(6);
                data.splice(line_start..line_start, std::iter::repeat_n(b' ', spaces));
            }
            6 if !donor_bytes.is_empty() => {
                let from = rng.below(donor_bytes.len());
                let end = (from + 1 + rng.below(200)).min(donor_bytes.len());
                data.splice(at..at, donor_bytes[from..end].iter().copied());
            }
            _ => data.insert(at, rng.below(256) as u8),
        }
    }
    name
}

/// Everything a case printed or wrote, for the canary check.
#[derive(Default)]
struct Shown(String);

/// Runs the pipeline on `repo`; every outcome but a panic is fine. Returns
/// all the text the commands would show (diagnostics in every format,
/// states, manifests, written files).
fn exercise(repo: MemRepo, render: bool) -> Shown {
    use controlcenter::diagnostics::render::{render_all, ErrorFormat};
    let mut shown = Shown::default();
    fn show(
        shown: &mut Shown,
        diags: &[controlcenter::diagnostics::Diagnostic],
        sources: &controlcenter::diagnostics::Sources,
    ) {
        for format in [
            ErrorFormat::Human,
            ErrorFormat::Json,
            ErrorFormat::Github,
            ErrorFormat::Short,
        ] {
            shown.0.push_str(&render_all(diags, sources, format, false));
        }
    }
    let limits = Limits::new(
        200,
        std::time::Duration::from_secs(5),
        std::time::Instant::now(),
    );
    let mut project = match Project::load(options(repo, limits)) {
        Ok(p) => p,
        Err(f) => {
            show(&mut shown, &f.diagnostics, &f.sources);
            return shown;
        }
    };
    for env in project.envs().into_iter().take(3) {
        let resolved = match project.resolve(&env) {
            Ok(r) => r,
            Err(d) => {
                show(&mut shown, &d, &project.sources);
                continue;
            }
        };
        shown
            .0
            .push_str(&serde_json::to_value(&resolved.state).unwrap().to_string());
        if !render {
            continue;
        }
        match project.render_resolved(&resolved) {
            Ok(resources) => {
                shown.0.push_str(&controlcenter::emit::render(
                    &resources,
                    controlcenter::emit::Format::Json,
                ));
                let parent = tempfile::tempdir().unwrap();
                let out = parent.path().join("out");
                let _ = controlcenter::emit::out_dir::write(&out, &resources, None);
                for e in std::fs::read_dir(parent.path()).unwrap().flatten() {
                    assert_eq!(e.file_name(), "out", "a write outside --out-dir");
                }
            }
            Err(d) => show(&mut shown, &d, &project.sources),
        }
    }
    shown
}

/// Whether the canary is still declared secret after `mutated` changed:
/// another file changed, or the sensitive file no longer parses.
fn canary_still_secret(repo: &MemRepo, mutated: &str) -> bool {
    if !is_sensitive(mutated) {
        return true;
    }
    let Ok(text) = std::str::from_utf8(&repo.0[mutated]) else {
        return true;
    };
    let mut sources = controlcenter::diagnostics::Sources::default();
    let id = sources.add(mutated, text);
    controlcenter::load::yaml::parse(text, id).is_err()
}

#[test]
fn mutated_inputs_never_panic_nor_show_a_secret() {
    let seeds = seeds();
    assert!(seeds.len() > 40);
    let planted: Vec<MemRepo> = seeds.iter().map(planted).collect();
    let cases: u64 = std::env::var("CC_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    let only: Option<u64> = std::env::var("CC_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok());
    let range: Vec<u64> = match only {
        Some(s) => vec![s],
        None => (1..=cases).collect(),
    };
    let mut checked = 0u64;
    for seed in range {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut repo = planted[rng.below(planted.len())].clone();
        // Donors are unplanted: splicing never moves the canary.
        let donor = seeds[rng.below(seeds.len())].clone();
        let mutated = mutate(&mut rng, &mut repo, &donor);
        let render = seed % 10 == 0;
        let must_hide = canary_still_secret(&repo, &mutated);
        let result = std::panic::catch_unwind(|| exercise(repo, render));
        let Ok(shown) = result else {
            panic!("panic on fuzz case CC_FUZZ_SEED={seed}");
        };
        if must_hide {
            checked += 1;
            assert!(
                !shown.0.contains(CANARY),
                "fuzz case CC_FUZZ_SEED={seed} showed a secret (mutated {mutated})"
            );
        }
    }
    eprintln!("fuzz: {cases} cases, {checked} checked for the canary");
}

#[test]
fn diagnostics_of_mutated_inputs_render_in_every_format() {
    use controlcenter::diagnostics::render::{render_all, ErrorFormat};
    let seeds = seeds();
    for seed in 1..=300u64 {
        let mut rng = Rng(seed | 1);
        let mut repo = seeds[rng.below(seeds.len())].clone();
        let donor = seeds[rng.below(seeds.len())].clone();
        mutate(&mut rng, &mut repo, &donor);
        let result = std::panic::catch_unwind(|| {
            if let Err(f) = Project::load(options(repo, Limits::default())) {
                for format in [ErrorFormat::Human, ErrorFormat::Json, ErrorFormat::Github] {
                    let _ = render_all(&f.diagnostics, &f.sources, format, seed % 2 == 0);
                }
            }
        });
        assert!(
            result.is_ok(),
            "panic rendering diagnostics of CC_FUZZ_SEED={seed}"
        );
    }
}

fn options(repo: MemRepo, limits: Limits) -> controlcenter::RenderOptions {
    controlcenter::RenderOptions {
        repo: Arc::new(repo),
        lib: Arc::new(EmbeddedLibrary),
        limits,
        default_namespace: None,
        workers: 0,
        cache: None,
        services: None,
        env: None,
    }
}
