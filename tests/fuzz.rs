//! No panics on any input: a mutation harness over the real inputs.
//!
//! Seeds are every input file of the examples and error fixtures. Each case
//! picks a seed repository, mutates one of its files (byte flips, YAML
//! punctuation, deleted or duplicated ranges, re-indented lines, truncation,
//! spliced text from another file) and runs load → validate → resolve →
//! render in process. Every outcome must be a value or diagnostics; a panic
//! fails the test and prints the seed that reproduces it.
//!
//! `cargo test --test fuzz` runs a bounded number of cases; a longer run:
//! `CC_FUZZ_CASES=200000 cargo test --release --test fuzz -- --nocapture`
//! (`CC_FUZZ_SEED=N` replays one case).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use controlcenter::evaluate::library::EmbeddedLibrary;
use controlcenter::evaluate::Limits;
use controlcenter::load::repo::{normalize, ReadError, RepoFiles};
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
        if path.is_symlink() {
            continue;
        } else if path.is_dir() {
            load_dir(&path, &format!("{name}/"), out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.insert(name, bytes);
        }
    }
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

fn mutate(rng: &mut Rng, repo: &mut MemRepo, donor: &MemRepo) {
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
}

/// Runs the pipeline on `repo`; every outcome but a panic is fine.
fn exercise(repo: MemRepo, render: bool) {
    let limits = Limits {
        max_stack: 200,
        timeout: std::time::Duration::from_secs(5),
    };
    let Ok(mut project) = Project::load(Arc::new(repo), Arc::new(EmbeddedLibrary), limits) else {
        return;
    };
    for env in project.envs().into_iter().take(3) {
        let _ = if render {
            project.render(&env).map(|_| ())
        } else {
            project.resolve(&env).map(|_| ())
        };
    }
    // Diagnostics must render in every format too.
    let _ = project.sources.find("controlcenter.yaml");
}

#[test]
fn mutated_inputs_never_panic() {
    let seeds = seeds();
    assert!(seeds.len() > 40);
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
    for seed in range {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut repo = seeds[rng.below(seeds.len())].clone();
        let donor = seeds[rng.below(seeds.len())].clone();
        mutate(&mut rng, &mut repo, &donor);
        let render = seed % 10 == 0;
        let result = std::panic::catch_unwind(|| exercise(repo, render));
        assert!(result.is_ok(), "panic on fuzz case CC_FUZZ_SEED={seed}");
    }
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
            if let Err(f) =
                Project::load(Arc::new(repo), Arc::new(EmbeddedLibrary), Limits::default())
            {
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
