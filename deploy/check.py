"""Checks deploy/ offline; run by pipeline/tests/deploy.rs (./test.sh installs the tools).

  .venv/bin/python deploy/check.py --weir target/debug/weir [--deploy DIR]

- the Dockerfiles pass hadolint and run as a non-root user;
- the kustomize overlays, rendered by `kubectl kustomize`, pass kubernetes-validate --strict
  (the oldest Kubernetes the manifests support and the newest it knows), and the ScaledObject
  passes KEDA's CRD schema (@kubernetes-models/keda);
- compose.yaml passes the compose specification's schema (check-jsonschema's vendored copy);
- weir.yaml loads with `weir check`, and the rest agrees with it: the grace periods cover the
  drain it prints, every queued function has a KEDA trigger on its consumer, the probes ask the
  right paths, MinIO notifies every node.

Prints every problem found and exits 1 if there was one.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
OLDEST_KUBERNETES = "1.30"  # the preStop `sleep` action is beta (on by default) from 1.30
problems = []


def problem(msg):
    problems.append(msg)
    print(f"FAIL {msg}")


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def dockerfiles(deploy):
    files = sorted((deploy / "docker").glob("Dockerfile.*"))
    if len(files) < 2:
        problem(f"expected a CPU and a CUDA Dockerfile in {deploy / 'docker'}")
    for f in files:
        out = run([str(BIN / "hadolint"), str(f)])
        if out.returncode != 0:
            problem(f"hadolint {f.name}:\n{out.stdout}{out.stderr}")
        else:
            print(f"ok   hadolint {f.name}")
        final = f.read_text().split("\nFROM ")[-1]
        users = [l.split()[1] for l in final.splitlines() if l.startswith("USER ")]
        if not users or users[-1] in ("root", "0"):
            problem(f"{f.name}: the final stage must run as a non-root USER")


def render(deploy, overlay):
    if not shutil.which("kubectl"):
        # Without kustomize the base's own files are checked as written (they are whole
        # resources), and the GPU overlay's patches are not.
        print(f"SKIP rendering overlays/{overlay}: kubectl (which carries kustomize) is not installed")
        if overlay != "cpu":
            return None
        base = deploy / "k8s" / "base"
        files = yaml.safe_load((base / "kustomization.yaml").read_text())["resources"]
        return [d for f in files for d in yaml.safe_load_all((base / f).read_text()) if d]
    out = run(["kubectl", "kustomize", str(deploy / "k8s" / "overlays" / overlay)])
    if out.returncode != 0:
        problem(f"kubectl kustomize overlays/{overlay}: {out.stderr}")
        return None
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def kubernetes_schemas(docs, name, tmp):
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all([d for d in docs if d["kind"] != "ScaledObject"]))
    for version in (OLDEST_KUBERNETES, None):
        cmd = [str(BIN / "kubernetes-validate"), "--strict", "--quiet", str(path)]
        if version:
            cmd[1:1] = ["-k", version]
        out = run(cmd)
        if out.returncode != 0:
            problem(f"kubernetes-validate {name} ({version or 'newest'}):\n{out.stdout}{out.stderr}")
        else:
            print(f"ok   kubernetes-validate --strict {name} ({version or 'newest'})")


KEDA_CHECK = """
const { ScaledObject } = require('@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject');
const docs = JSON.parse(require('fs').readFileSync(0, 'utf8'));
let bad = 0;
for (const d of docs) {
  try { new ScaledObject(d).validate(); }
  catch (e) { bad++; console.log(`${d.metadata.name}: ${e.message}`); }
}
process.exit(bad ? 1 : 0);
"""


def keda_schema(docs, name):
    objects = [d for d in docs if d["kind"] == "ScaledObject"]
    if not objects:
        problem(f"{name}: no KEDA ScaledObject")
        return
    env = dict(os.environ, NODE_PATH=str(ROOT / ".tools" / "node" / "node_modules"))
    out = run(["node", "-e", KEDA_CHECK], input=json.dumps(objects), env=env)
    if out.returncode != 0:
        problem(f"{name}: ScaledObject against KEDA's CRD schema: {out.stdout}{out.stderr}")
    else:
        print(f"ok   {name}: ScaledObject against KEDA's CRD schema")


def weir_check(weir, deploy, tmp):
    """Loads weir.yaml with the real binary, beside the models the images carry."""
    conf = tmp / "weir.yaml"
    shutil.copy(deploy / "k8s" / "base" / "weir.yaml", conf)
    (tmp / "models").symlink_to(ROOT / "examples" / "models")
    out = run([weir, "check", "--config", str(conf)])
    if out.returncode != 0:
        problem(f"weir check weir.yaml: {out.stderr.strip()}")
        return None
    checked = json.loads(out.stdout)
    print(f"ok   weir check weir.yaml: {len(checked['functions'])} functions, drain {checked['drain_s']} s")
    return checked


def agrees_with_weir(docs, name, checked, bus):
    dep = next(d for d in docs if d["kind"] == "Deployment")
    pod = dep["spec"]["template"]["spec"]
    weir = next(c for c in pod["containers"] if c["name"] == "weir")
    pre_stop = weir.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace < checked["drain_s"] + pre_stop:
        problem(f"{name}: terminationGracePeriodSeconds {grace} < drain {checked['drain_s']} s + preStop {pre_stop} s")
    for probe, path in (("readinessProbe", "/healthz/ready"), ("livenessProbe", "/healthz")):
        got = weir.get(probe, {}).get("httpGet", {}).get("path")
        if got != path:
            problem(f"{name}: {probe} asks {got!r}, not {path!r}")
    mounts = {m["mountPath"] for m in weir.get("volumeMounts", [])}
    if "/opt/weir/weir.yaml" not in mounts:
        problem(f"{name}: weir.yaml is not mounted at /opt/weir/weir.yaml")
    gpus = weir.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
    if (name == "gpu") != (gpus is not None):
        problem(f"{name}: nvidia.com/gpu limit is {gpus!r}")
    so = next((d for d in docs if d["kind"] == "ScaledObject"), None)
    if so is None:
        return
    if so["spec"]["scaleTargetRef"]["name"] != dep["metadata"]["name"]:
        problem(f"{name}: the ScaledObject scales {so['spec']['scaleTargetRef']['name']!r}")
    queued = {f["name"] for f in checked["functions"] if set(f["triggers"]) - {"http"}}
    seen = set()
    for t in so["spec"]["triggers"]:
        m = t.get("metadata", {})
        if t["type"] != "nats-jetstream" or m.get("stream") != bus["stream"]:
            problem(f"{name}: trigger {t['type']} on stream {m.get('stream')!r}, not nats-jetstream on {bus['stream']!r}")
        seen.add(m.get("consumer"))
    if seen != queued:
        problem(f"{name}: KEDA watches consumers {sorted(seen)}, the functions with queued triggers are {sorted(queued)}")


def compose(deploy, checked):
    path = deploy / "compose.yaml"
    out = run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)])
    if out.returncode != 0:
        problem(f"compose.yaml against the compose specification:\n{out.stdout}{out.stderr}")
        return
    print("ok   compose.yaml against the compose specification")
    spec = yaml.safe_load(path.read_text())
    services = spec["services"]
    nodes = [n for n, s in services.items() if "weir.yaml" in " ".join(s.get("volumes", []))]
    if len(nodes) < 2:
        problem(f"compose.yaml: {len(nodes)} Weir node(s) with weir.yaml mounted; the stack needs two")
    for n in nodes:
        grace = services[n].get("stop_grace_period", "10s")
        if not grace.endswith("s") or int(grace[:-1]) < checked["drain_s"]:
            problem(f"compose.yaml: {n} stop_grace_period {grace} < drain {checked['drain_s']} s")
    env = services.get("minio", {}).get("environment", {})
    endpoints = {v for k, v in env.items() if k.startswith("MINIO_NOTIFY_WEBHOOK_ENDPOINT_")}
    for n in nodes:
        if f"http://{n}:8080/v1/events/s3" not in endpoints:
            problem(f"compose.yaml: MinIO does not notify {n} (webhook endpoints {sorted(endpoints)})")
    for k in ("nats", "minio"):
        if k not in services:
            problem(f"compose.yaml: no {k} service")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weir", required=True, help="the weir binary")
    ap.add_argument("--deploy", default=str(ROOT / "deploy"), help="the deploy/ folder to check")
    args = ap.parse_args()
    deploy = Path(args.deploy)
    dockerfiles(deploy)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checked = weir_check(args.weir, deploy, tmp)
        bus = yaml.safe_load((deploy / "k8s" / "base" / "weir.yaml").read_text()).get("bus", {})
        for overlay in ("cpu", "gpu"):
            docs = render(deploy, overlay)
            if docs is None:
                continue
            kubernetes_schemas(docs, overlay, tmp)
            keda_schema(docs, overlay)
            if checked:
                agrees_with_weir(docs, overlay, checked, bus)
        if checked:
            compose(deploy, checked)
    if problems:
        print(f"deploy check: {len(problems)} problem(s)")
        sys.exit(1)
    print("deploy check: ok")


if __name__ == "__main__":
    main()
