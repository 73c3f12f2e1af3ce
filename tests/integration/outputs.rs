//! The Terraform-outputs contract: on a dev-branch checkout (no
//! env-prod.yaml), `validate` checks prod against typed placeholders and
//! finds prod-only mistakes there; a present env file is checked against
//! the contract; placeholders never reach `render` or the plugin.

use crate::common;

use common::{controlcenter, copy_tree, edit, normalize_transcript, run_in};

/// An example as the dev branch carries it: without the env files of the
/// other environments.
fn dev_branch(example: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(
        &common::root().join("controlcenter-examples").join(example),
        dir.path(),
    );
    for env in ["preprod", "prod"] {
        std::fs::remove_file(dir.path().join(format!("env-{env}.yaml"))).unwrap();
    }
    dir
}

#[test]
fn validate_on_the_dev_branch_checks_prod_with_placeholders() {
    for example in ["article", "platform"] {
        let repo = dev_branch(example);
        let out = run_in(repo.path(), &["validate"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{example}: {stderr}");
        for env in ["preprod", "prod"] {
            let line = stderr
                .lines()
                .find(|l| l.starts_with(&format!("ok      {env}: ")))
                .unwrap_or_default();
            assert!(
                line.ends_with(
                    "resources (Terraform outputs: placeholders from schemas/terraform-outputs.schema.json)"
                ),
                "{example}: {stderr}"
            );
        }
        insta::assert_snapshot!(
            format!("dev-branch-validate-{example}"),
            normalize_transcript(&out, repo.path())
        );
    }
}

#[test]
fn a_prod_only_template_error_is_caught_on_the_dev_branch() {
    let repo = dev_branch("article");
    std::fs::create_dir_all(repo.path().join("jsonnet")).unwrap();
    std::fs::write(
        repo.path().join("jsonnet/main.jsonnet"),
        "local cc = import 'controlcenter/lib.libsonnet';\n\nfunction(state)\n  (cc.new(state) + {\n     deployment(svc)::\n       assert state.env != 'prod' || svc.replicas <= 3 : 'more than 3 replicas in prod needs a capacity review';\n       super.deployment(svc),\n   }).manifests\n",
    )
    .unwrap();
    edit(
        repo.path(),
        "controlcenter.yaml",
        "    git_rev: v1.0.146\n",
        "    git_rev: v1.0.146\n    replicas: 5\n",
    );
    let out = run_in(repo.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(normalize_transcript(&out, repo.path()));
}

#[test]
fn a_prod_only_policy_failure_is_caught_on_the_dev_branch() {
    let repo = dev_branch("article");
    // A mutable image is refused in the protected environment only.
    edit(
        repo.path(),
        "tags.yaml",
        "service_rpps:\n",
        "service_rpps:\n  hotfix: 123456789012.dkr.ecr.us-east-1.amazonaws.com/service_rpps:latest\n",
    );
    edit(
        repo.path(),
        "controlcenter.yaml",
        "    git_rev: v1.0.146\n",
        "    git_rev: hotfix\n",
    );
    let out = run_in(repo.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(1));
    let text = normalize_transcript(&out, repo.path());
    assert!(
        text.contains("CC0305") && text.contains("controlcenter.yaml:"),
        "{text}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn a_prod_section_unknown_tag_is_caught_on_the_dev_branch() {
    let repo = dev_branch("platform");
    edit(
        repo.path(),
        "controlcenter.yaml",
        "\nprod:\n",
        "\nprod:\n  brand_new:\n    git_rev: v0.0.1\n",
    );
    let out = run_in(repo.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(1));
    let text = normalize_transcript(&out, repo.path());
    assert!(
        text.contains("CC0304") && text.contains("failed  prod"),
        "{text}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn an_env_file_missing_a_declared_output_fails_at_its_line() {
    let repo = dev_branch("article");
    edit(
        repo.path(),
        "env-dev.yaml",
        "db_endpoint: dev-db.cluster-abc.eu-west-1.rds.amazonaws.com\n",
        "",
    );
    edit(
        repo.path(),
        "env-dev.yaml",
        "  - 203.0.113.10\n",
        "  - not-an-ip\n",
    );
    let out = run_in(repo.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(1));
    let text = normalize_transcript(&out, repo.path());
    assert!(text.contains("CC0311"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn an_output_declared_secret_but_not_marked_sensitive_is_refused_and_never_shown() {
    const CANARY: &str = "CANARYplainTFsecret42";
    // Plain, and raw with `sensitive: false`: both hold the value in clear.
    for written in [
        format!("db_master_password: {CANARY}\n"),
        format!("db_master_password:\n  value: {CANARY}\n  sensitive: false\n"),
    ] {
        let repo = dev_branch("platform");
        let path = repo.path().join("env-dev.yaml");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(&written);
        std::fs::write(&path, text).unwrap();
        let cache = tempfile::tempdir().unwrap();
        for args in [
            &["render", "--env", "dev"][..],
            &["state", "--env", "dev"],
            &["validate"],
            &["render", "--env", "dev", "--error-format", "json"],
        ] {
            let out = controlcenter()
                .env("CONTROLCENTER_CACHE_DIR", cache.path())
                .arg("--repo")
                .arg(repo.path())
                .args(args)
                .output()
                .unwrap();
            let text = normalize_transcript(&out, repo.path());
            assert_eq!(out.status.code(), Some(1), "{args:?}: {text}");
            assert!(
                text.contains("`db_master_password` is secret"),
                "{args:?}: {text}"
            );
            assert!(!text.contains(CANARY), "{args:?}: {text}");
        }
        for pack in std::fs::read_dir(cache.path().join("packs"))
            .into_iter()
            .flatten()
        {
            let bytes = std::fs::read(pack.unwrap().path()).unwrap();
            assert!(!String::from_utf8_lossy(&bytes).contains(CANARY));
        }
    }
    let repo = dev_branch("platform");
    let path = repo.path().join("env-dev.yaml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("db_master_password: {CANARY}\n"));
    std::fs::write(&path, text).unwrap();
    insta::assert_snapshot!(normalize_transcript(
        &run_in(repo.path(), &["render", "--env", "dev"]),
        repo.path()
    ));
}

#[test]
fn a_template_reading_an_undeclared_output_names_the_contract() {
    let repo = dev_branch("article");
    std::fs::create_dir_all(repo.path().join("jsonnet")).unwrap();
    std::fs::write(
        repo.path().join("jsonnet/main.jsonnet"),
        "local cc = import 'controlcenter/lib.libsonnet';\n\nfunction(state)\n  (cc.new(state) + {\n     configMap(svc):: super.configMap(svc) + {\n       data+: { DB_HOST: state.params.terraform.rds_endpoint },\n     },\n   }).manifests\n",
    )
    .unwrap();
    let out = run_in(repo.path(), &["validate", "--env", "prod"]);
    assert_eq!(out.status.code(), Some(1));
    let text = normalize_transcript(&out, repo.path());
    assert!(
        text.contains("CC0312") && text.contains("jsonnet/main.jsonnet:6:"),
        "{text}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn render_refuses_placeholders_unless_asked_and_marks_them() {
    let repo = dev_branch("article");
    std::fs::create_dir_all(repo.path().join("jsonnet")).unwrap();
    std::fs::write(
        repo.path().join("jsonnet/main.jsonnet"),
        "local cc = import 'controlcenter/lib.libsonnet';\n\nfunction(state)\n  (cc.new(state) + {\n     configMap(svc):: super.configMap(svc) + {\n       data+: { DB_HOST: state.params.terraform.db_endpoint, NAT_IP: state.params.terraform.nat_ips[0] },\n     },\n   }).manifests\n",
    )
    .unwrap();
    let plain = run_in(repo.path(), &["render", "--env", "prod"]);
    assert_eq!(plain.status.code(), Some(1));
    assert!(plain.stdout.is_empty());
    assert!(String::from_utf8_lossy(&plain.stderr).contains("CC0302"));

    let out = run_in(repo.path(), &["render", "--env", "prod", "--placeholders"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(
        yaml.starts_with("# PLACEHOLDER RENDER: not for a cluster."),
        "{yaml}"
    );
    assert!(
        yaml.contains("DB_HOST: db-endpoint.placeholder.invalid  # PLACEHOLDER:db_endpoint"),
        "{yaml}"
    );
    assert!(
        yaml.contains("NAT_IP: \"192.0.2.4\"  # PLACEHOLDER:nat_ips[0]")
            || yaml.contains("NAT_IP: 192.0.2.4  # PLACEHOLDER:nat_ips[0]"),
        "{yaml}"
    );
    insta::assert_snapshot!(normalize_transcript(&out, repo.path()));

    // With the env file present, `--placeholders` changes nothing.
    let real = run_in(
        &common::root().join("controlcenter-examples/article"),
        &["render", "--env", "prod", "--placeholders"],
    );
    let plain = run_in(
        &common::root().join("controlcenter-examples/article"),
        &["render", "--env", "prod"],
    );
    assert_eq!(real.stdout, plain.stdout);
    assert!(!String::from_utf8_lossy(&real.stdout).contains("PLACEHOLDER"));
}

#[test]
fn the_plugin_never_renders_placeholders() {
    let repo = dev_branch("article");
    let out = controlcenter()
        .current_dir(repo.path())
        .env("ARGOCD_ENV_CC_ENV", "prod")
        .env("ARGOCD_APP_NAME", "article-prod")
        .env("ARGOCD_APP_NAMESPACE", "prod")
        .args(["cmp", "generate"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("env-prod.yaml"));
}

#[test]
fn without_a_contract_the_env_files_present_give_the_placeholders() {
    let repo = dev_branch("article");
    std::fs::remove_file(repo.path().join("schemas/terraform-outputs.schema.json")).unwrap();
    let out = run_in(repo.path(), &["validate"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("ok      prod: 8 resources (Terraform outputs: placeholders from the outputs of env-dev.yaml)"),
        "{stderr}"
    );
    // No env file and no contract: nothing to check prod against.
    std::fs::remove_file(repo.path().join("env-dev.yaml")).unwrap();
    let out = run_in(repo.path(), &["validate"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("skipped prod: env-prod.yaml is not on this branch"),
        "{stderr}"
    );
}

#[test]
fn schema_export_includes_the_contract() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = run_in(
        &common::root().join("controlcenter-examples/platform"),
        &["schema", "export", out_dir.path().to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported =
        std::fs::read_to_string(out_dir.path().join("terraform-outputs.schema.json")).unwrap();
    let shipped = std::fs::read_to_string(
        common::root()
            .join("controlcenter-examples/platform/schemas/terraform-outputs.schema.json"),
    )
    .unwrap();
    assert_eq!(exported, shipped);
}
