//! Render benchmark: `cargo bench --bench render`.
//!
//! Times the real binary end to end (process start, load, validate,
//! resolve, Jsonnet, post-process, emit) on the shipped examples and on
//! generated repositories of 100 and 1000 services, and the in-process
//! pipeline stages for the largest one. Prints the median and the spread of
//! several runs. Not a test: nothing fails on a slow machine.
//!
//! `cargo bench --bench render -- --keep DIR` also writes the generated
//! 1000-service repository to DIR, for profiling or `hyperfine`.
//!
//! `cargo bench --bench render -- --scale` instead renders plain and rich
//! repositories of 1000 and 5000 services (`--scale-20k`: and 20000): cold
//! time, stage split and peak memory (the binary's `CONTROLCENTER_TIMINGS`
//! line), go-jsonnet on the same state when `gojsonnet` is installed, and a
//! warm render after one service changed. docs/performance.md records them.
//!
//! `cargo bench --bench render -- --hydrate` compares `hydrate` with
//! `render --out-dir` (both cold: no evaluation cache) on plain repositories
//! of 1000 and 5000 services, in turn: the first hydration (every object
//! new), a hydration to a fresh branch (objects already stored, as in a CI
//! clone that fetched the branch) and one after a one-service change.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use controlcenter::evaluate::library::EmbeddedLibrary;
use controlcenter::evaluate::Limits;
use controlcenter::repo::WorkTree;
use controlcenter::Project;

/// A Git repository holding `src` in one commit, then a second commit that
/// raises every `replicas: 3` to 4 (every service changes).
fn git_history(src: &Path, dest: &Path) {
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .args(args)
            .current_dir(dest)
            .env("GIT_AUTHOR_NAME", "bench")
            .env("GIT_AUTHOR_EMAIL", "bench@example.com")
            .env("GIT_COMMITTER_NAME", "bench")
            .env("GIT_COMMITTER_EMAIL", "bench@example.com")
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "git {args:?}");
    };
    std::fs::create_dir_all(dest).unwrap();
    copy_tree(src, dest);
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "base"]);
    let cc = dest.join("controlcenter.yaml");
    let text = std::fs::read_to_string(&cc).unwrap();
    std::fs::write(&cc, text.replace("replicas: 3", "replicas: 4")).unwrap();
    git(&["commit", "-q", "-am", "scale"]);
}

fn copy_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let t = to.join(e.file_name());
        if e.path().is_dir() {
            std::fs::create_dir_all(&t).unwrap();
            copy_tree(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

fn stats(mut times: Vec<Duration>) -> String {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "median {:>8.1} ms  (min {:.1}, max {:.1}, n={})",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1]),
        times.len()
    )
}

fn time_binary(label: &str, args: &[&str], runs: usize) -> usize {
    let bin = env!("CARGO_BIN_EXE_controlcenter");
    let mut times = Vec::new();
    let mut lines = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let out = Command::new(bin).args(args).output().unwrap();
        times.push(start.elapsed());
        assert!(
            out.status.success(),
            "{label}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        lines = resource_count(&out.stdout);
    }
    match lines {
        0 => println!("{label:<44} {}", stats(times)),
        n => println!("{label:<44} {}  [{n} resources]", stats(times)),
    }
    lines
}

/// Documents of a YAML stream, or lines of JSON lines.
fn resource_count(stdout: &[u8]) -> usize {
    let text = String::from_utf8_lossy(stdout);
    let docs = text.lines().filter(|l| *l == "---").count();
    if docs > 0 {
        docs
    } else {
        text.lines().filter(|l| l.starts_with('{')).count()
    }
}

fn time_stages(repo: &Path, env: &str, runs: usize) {
    let mut load = Vec::new();
    let mut resolve = Vec::new();
    let mut render = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let mut project = Project::load(controlcenter::RenderOptions {
            repo: Arc::new(WorkTree::open(repo).unwrap()),
            lib: Arc::new(EmbeddedLibrary),
            limits: Limits::default(),
            default_namespace: None,
            workers: 0,
            cache: None,
            services: None,
            env: None,
        })
        .ok()
        .unwrap();
        load.push(t.elapsed());
        let t = Instant::now();
        let resolved = project.resolve(env).unwrap();
        resolve.push(t.elapsed());
        let t = Instant::now();
        let resources = project.render_resolved(&resolved).unwrap();
        render.push(t.elapsed());
        assert!(!resources.is_empty());
    }
    println!(
        "  load + schema validation                   {}",
        stats(load)
    );
    println!(
        "  resolve                                    {}",
        stats(resolve)
    );
    println!(
        "  evaluate + post-process                    {}",
        stats(render)
    );
}

/// A repository of `n` services in `dev` and `prod`. Plain: resources,
/// env vars and flags. Rich adds an HPA, a PDB, an ingress with TLS, an
/// external secret and a Terraform Cloud resource to every service.
pub fn generate_scale_repo(dir: &Path, n: usize, rich: bool) {
    let mut cc = String::from("settings:\n  part_of: bench\ndefaults:\n  log_level: info\n");
    for env in ["dev", "prod"] {
        let _ = writeln!(cc, "{env}:");
        for i in 0..n {
            let replicas = if env == "prod" { 3 } else { 1 };
            let _ = write!(
                cc,
                "  svc_{i:05}:\n    git_rev: v1.{i}.0\n    replicas: {replicas}\n    memory_min: 256Mi\n    memory_max: 512Mi\n    cpu_min: 100m\n    env:\n      LOG_LEVEL: info\n      SERVICE_INDEX: \"{i}\"\n    flags:\n      new_checkout: true\n      darkMode: false\n"
            );
            if rich {
                let _ = write!(
                    cc,
                    "    autoscaling: {{min_replicas: 3, max_replicas: 10, cpu_utilization: 70}}\n    disruption_budget: {{min_available: 2}}\n    ingress: {{host: svc-{i}.{env}.example.com, class: nginx, tls_secret: tls-{i}}}\n    secrets: {{DB_PASSWORD: {{store: aws-secrets, key: {env}/svc-{i}/db}}}}\n    resources: {{bucket: {{module: app.terraform.io/acme/s3/aws, variables: {{name: svc-{i}-bucket, versioning: true}}}}}}\n"
                );
            }
        }
    }
    let mut tags = String::new();
    let mut env_file = String::from("vpc_id: vpc-123\nirsa_role_arns:\n");
    for i in 0..n {
        let _ = writeln!(
            tags,
            "svc_{i:05}:\n  v1.{i}.0: 123456789012.dkr.ecr.us-east-1.amazonaws.com/svc_{i:05}:{i}"
        );
        if i % 2 == 0 {
            let _ = writeln!(
                env_file,
                "  svc_{i:05}: arn:aws:iam::123456789012:role/svc-{i:05}"
            );
        }
    }
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("controlcenter.yaml"), cc).unwrap();
    std::fs::write(dir.join("tags.yaml"), tags).unwrap();
    std::fs::write(dir.join("env-dev.yaml"), &env_file).unwrap();
    std::fs::write(dir.join("env-prod.yaml"), &env_file).unwrap();
}

/// One render of the binary: wall time and its own timings line.
fn timed_render(repo: &Path, cache: Option<&Path>) -> (Duration, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_controlcenter"));
    cmd.args([
        "--repo",
        repo.to_str().unwrap(),
        "--timeout",
        "600",
        "--max-memory",
        "4096",
    ]);
    cmd.args(["render", "--env", "prod", "--format", "json"]);
    cmd.env("CONTROLCENTER_TIMINGS", "1");
    match cache {
        Some(dir) => cmd.env("CONTROLCENTER_CACHE_DIR", dir),
        None => cmd.arg("--no-cache"),
    };
    let start = Instant::now();
    let out = cmd.output().unwrap();
    let wall = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("timings:"))
        .unwrap_or_default()
        .trim_start_matches("timings: ")
        .to_owned();
    (wall, line)
}

/// go-jsonnet (PyPI `gojsonnet`) evaluating the library on the same state,
/// when it is installed: seconds.
fn go_jsonnet_seconds(repo: &Path) -> Option<f64> {
    let state = Command::new(env!("CARGO_BIN_EXE_controlcenter"))
        .args(["--repo", repo.to_str().unwrap(), "state", "--env", "prod"])
        .output()
        .ok()?;
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("lib-jsonnet");
    let script = format!(
        "import sys, time, _gojsonnet\ns = sys.stdin.read()\nt = time.time()\n_gojsonnet.evaluate_file('{}', jpathdir=['{}'], tla_codes={{'state': s}})\nprint(time.time() - t)",
        lib.join("main.jsonnet").display(),
        lib.display()
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    std::io::Write::write_all(child.stdin.as_mut()?, &state.stdout).ok()?;
    drop(child.stdin.take());
    let out = child.wait_with_output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Raises the last prod service's replicas: one service of the repository
/// changes.
fn change_one_service(repo: &Path) {
    let cc = repo.join("controlcenter.yaml");
    let mut text = std::fs::read_to_string(&cc).unwrap();
    let at = text.rfind("replicas: 3").unwrap();
    text.replace_range(at..at + "replicas: 3".len(), "replicas: 4");
    std::fs::write(&cc, text).unwrap();
}

/// Plain and rich repositories of growing size: cold render (no cache),
/// its stages and peak memory, go-jsonnet on the same state, and a warm
/// render after one service changed. `--scale` adds N = 20000.
fn scale(tmp: &Path, big: bool) {
    let sizes: &[usize] = if big {
        &[1000, 5000, 20000]
    } else {
        &[1000, 5000]
    };
    println!(
        "scale ({} cores): cold render [stages] | go-jsonnet eval | warm after one change [stages]",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for rich in [false, true] {
        for &n in sizes {
            let label = format!("{} {n}", if rich { "rich" } else { "plain" });
            let repo = tmp.join(label.replace(' ', "-"));
            generate_scale_repo(&repo, n, rich);
            let (cold, stages) = timed_render(&repo, None);
            let go = go_jsonnet_seconds(&repo)
                .map_or_else(|| "not installed".to_owned(), |s| format!("{s:.2} s"));
            let cache = tmp.join(format!("cache-{}", label.replace(' ', "-")));
            timed_render(&repo, Some(&cache));
            change_one_service(&repo);
            let (warm, warm_stages) = timed_render(&repo, Some(&cache));
            println!(
                "{label:<12} cold {:>7.0} ms [{stages}] | go-jsonnet {go} | warm {:>6.0} ms [{warm_stages}]",
                cold.as_secs_f64() * 1000.0,
                warm.as_secs_f64() * 1000.0
            );
        }
    }
}

/// Median of `runs` timings of `controlcenter args` (which must succeed).
fn median_run(args: &[&str], runs: usize) -> Duration {
    let bin = env!("CARGO_BIN_EXE_controlcenter");
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let out = Command::new(bin).args(args).output().unwrap();
            let took = start.elapsed();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            took
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// `explain` of one resource against a plain render of the same
/// environment (no evaluation cache for either).
fn explain_vs_render(repo: &Path, runs: usize) {
    let r = repo.to_str().unwrap();
    let render = median_run(
        &[
            "--repo",
            r,
            "--no-cache",
            "render",
            "--env",
            "prod",
            "--format",
            "json",
        ],
        runs,
    );
    let explain = median_run(
        &[
            "--repo",
            r,
            "--no-cache",
            "explain",
            "--env",
            "prod",
            "Deployment/svc-00500",
        ],
        runs,
    );
    let field = median_run(
        &[
            "--repo",
            r,
            "--no-cache",
            "explain",
            "--env",
            "prod",
            "Deployment/svc-00500.spec.template.spec.containers[0].image",
        ],
        runs,
    );
    println!(
        "explain vs render, 1000 services (median of {runs}): render {:.0} ms | explain Deployment {:.0} ms ({:.2}x) | explain one field {:.0} ms ({:.2}x)",
        render.as_secs_f64() * 1000.0,
        explain.as_secs_f64() * 1000.0,
        explain.as_secs_f64() / render.as_secs_f64(),
        field.as_secs_f64() * 1000.0,
        field.as_secs_f64() / render.as_secs_f64(),
    );
}

/// `hydrate` against `render --out-dir` of the same environment.
fn hydrate_vs_out_dir(tmp: &Path) {
    println!("hydrate vs render --out-dir (no evaluation cache), prod, wall time:");
    for n in [1000, 5000] {
        let repo = tmp.join(format!("hydrate-{n}"));
        generate_scale_repo(&repo, n, false);
        let git = |args: &[&str]| {
            let ok = Command::new("git")
                .args([
                    "-c",
                    "user.name=bench",
                    "-c",
                    "user.email=bench@example.com",
                ])
                .args(args)
                .current_dir(&repo)
                .output()
                .unwrap()
                .status
                .success();
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q", "-b", "dev"]);
        git(&["add", "-A"]);
        git(&["commit", "-q", "-m", "base"]);
        let r = repo.to_str().unwrap();
        let out = tmp.join(format!("out-{n}"));
        let o = out.to_str().unwrap();
        let render = median_run(
            &[
                "--no-cache",
                "--repo",
                r,
                "render",
                "--env",
                "prod",
                "--out-dir",
                o,
            ],
            5,
        );
        let hydrate_to = |branch: &str| {
            median_run(
                &[
                    "--no-cache",
                    "--repo",
                    r,
                    "hydrate",
                    "--env",
                    "prod",
                    "--to",
                    branch,
                ],
                1,
            )
        };
        let first = hydrate_to("bench/first");
        let mut fresh = Vec::new();
        for i in 0..5 {
            let to = format!("bench/fresh-{i}");
            fresh.push(hydrate_to(&to));
        }
        fresh.sort();
        let fresh = fresh[2];
        change_one_service(&repo);
        git(&["commit", "-q", "-am", "one service"]);
        let one = hydrate_to("bench/first");
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let ratio = |d: Duration| d.as_secs_f64() / render.as_secs_f64();
        println!(
            "plain {n:<6} render --out-dir {:>7.0} ms | hydrate: first {:>7.0} ms ({:.2}×), fresh branch {:>7.0} ms ({:.2}×), one service changed {:>7.0} ms ({:.2}×)",
            ms(render),
            ms(first),
            ratio(first),
            ms(fresh),
            ratio(fresh),
            ms(one),
            ratio(one)
        );
    }
}

fn main() {
    let keep = std::env::args().skip_while(|a| a != "--keep").nth(1);
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--hydrate") {
        let tmp = tempfile::tempdir().unwrap();
        hydrate_vs_out_dir(tmp.path());
        return;
    }
    if args.iter().any(|a| a == "--explain") {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("explain-1000");
        generate_scale_repo(&repo, 1000, false);
        explain_vs_render(&repo, 7);
        return;
    }
    if args.iter().any(|a| a == "--scale" || a == "--scale-20k") {
        let tmp = tempfile::tempdir().unwrap();
        scale(tmp.path(), args.iter().any(|a| a == "--scale-20k"));
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let article = root.join("controlcenter-examples/article");
    let platform = root.join("controlcenter-examples/platform");
    let tmp = tempfile::tempdir().unwrap();
    let (g100, g1000) = (tmp.path().join("g100"), tmp.path().join("g1000"));
    generate_scale_repo(&g100, 100, false);
    generate_scale_repo(&g1000, 1000, false);
    if let Some(dir) = &keep {
        generate_scale_repo(Path::new(dir), 1000, false);
        println!("wrote a 1000-service repository to {dir}");
    }

    println!("controlcenter render, wall time of the binary:");
    for (label, repo, env, runs) in [
        ("article, dev (yaml)", &article, "dev", 30),
        ("platform, prod (yaml)", &platform, "prod", 20),
        ("generated 100 services, prod (yaml)", &g100, "prod", 10),
        ("generated 1000 services, prod (yaml)", &g1000, "prod", 5),
    ] {
        time_binary(
            label,
            &["--repo", repo.to_str().unwrap(), "render", "--env", env],
            runs,
        );
    }
    time_binary(
        "article, dev (json, what the CMP emits)",
        &[
            "--repo",
            article.to_str().unwrap(),
            "render",
            "--env",
            "dev",
            "--format",
            "json",
        ],
        30,
    );
    time_binary(
        "article, validate (all envs)",
        &["--repo", article.to_str().unwrap(), "validate"],
        30,
    );
    explain_vs_render(&g1000, 5);
    println!("diff between two Git revisions vs one render (wall time):");
    for (label, src) in [("platform", &platform), ("generated 1000 services", &g1000)] {
        let repo = tmp.path().join(format!("git-{}", label.len()));
        git_history(src, &repo);
        let r = repo.to_str().unwrap();
        time_binary(
            &format!("{label}: render --rev HEAD"),
            &["--repo", r, "render", "--env", "prod", "--rev", "HEAD"],
            5,
        );
        time_binary(
            &format!("{label}: diff HEAD~1 → HEAD"),
            &[
                "--repo", r, "diff", "--env", "prod", "--from", "HEAD~1", "--to", "HEAD", "--stat",
            ],
            5,
        );
    }
    println!("generated 1000 services, prod, in process:");
    time_stages(&g1000, "prod", 5);
}
