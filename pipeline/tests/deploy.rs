//! deploy/ checked offline (issue 16): the Dockerfiles linted, the kustomize overlays and the
//! compose file validated against their schemas, weir.yaml loaded by the real binary, and all of
//! them agreeing with it (deploy/check.py). The checks must also catch what a broken change
//! would ship.

mod common;

use std::path::Path;
use std::process::Command;

use common::root;

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

/// `deploy/check.py` on `deploy`: (passed, everything it printed).
fn check(deploy: &Path) -> (bool, String) {
    let python = root().join(".venv/bin/python");
    assert!(
        python.exists() && root().join(".tools/node/node_modules").exists(),
        "the deploy tools are missing: run ./test.sh (or . scripts/setup.sh; weir_python_venv; weir_deploy_tools)"
    );
    let out = Command::new(python)
        .arg(root().join("deploy/check.py"))
        .args(["--weir", WEIR, "--deploy"])
        .arg(deploy)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_deploy_folder_passes_its_checks() {
    let (ok, text) = check(&root().join("deploy"));
    assert!(ok && text.contains("deploy check: ok"), "{text}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn the_checks_catch_broken_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let deploy = dir.path().join("deploy");
    copy_dir(&root().join("deploy"), &deploy);
    // A grace period shorter than the drain, a replica count KEDA's schema refuses, a function
    // KEDA no longer watches, a root image, a node MinIO does not notify, a Service port the
    // Kubernetes schema refuses.
    for (file, from, to) in [
        (
            "k8s/base/deployment.yaml",
            "terminationGracePeriodSeconds: 140",
            "terminationGracePeriodSeconds: 30",
        ),
        (
            "k8s/base/scaledobject.yaml",
            "minReplicaCount: 1",
            "minReplicaCount: one",
        ),
        (
            "k8s/base/scaledobject.yaml",
            "consumer: keyframes",
            "consumer: frames",
        ),
        ("docker/Dockerfile.cpu", "USER 10001", "USER root"),
        (
            "compose.yaml",
            "http://weir-2:8080/v1/events/s3",
            "http://weir-3:8080/v1/events/s3",
        ),
        ("k8s/base/service.yaml", "port: 8080", "port: http"),
    ] {
        edit(&deploy.join(file), from, to);
    }
    let (ok, text) = check(&deploy);
    assert!(!ok, "{text}");
    for expected in [
        "terminationGracePeriodSeconds 30 < drain 125",
        "minReplicaCount must be integer",
        "KEDA watches consumers ['frames', 'labels', 'thumbs']",
        "Dockerfile.cpu: the final stage must run as a non-root USER",
        "MinIO does not notify weir-2",
        "kubernetes-validate cpu",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
}

#[test]
fn weir_check_names_what_is_wrong_in_a_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("weir.yaml");
    std::fs::write(
        &config,
        "functions:\n  - name: thumbs\n    kind: thumbnial\n    params: {}\n",
    )
    .unwrap();
    let out = Command::new(WEIR)
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("functions[0]") && stderr.contains("thumbnial"),
        "{stderr}"
    );
}
