"""Benchmark the converge of the local platform against the kubectl floor (not a test).

On a dedicated offline cluster (`mlops-bench`, its own kubeconfig; the everyday cluster is
left alone) this measures, with several repetitions each (median and spread):

- cold converge of playbooks/site.yml on inventories/local (fresh cluster each time);
- no-op converge (already converged);
- the floor: `kubectl apply --server-side` of exactly the objects the collection created,
  read back from the cluster by our labels and stripped of server-set fields, cold (fresh
  cluster) and no-op;
- scaling: no-op and cold converge with N generated teams.

It prints a table and the ratios, writes bench/results/latest.json and latest.md, and
rewrites the README's performance section between its markers. Timings are noisy: compare
ratios from the same run. Usage: .venv/bin/python bench/run.py [--reps 3] [--teams 1,10,30,100]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "roles" / "cluster" / "files" / "offline-cluster.sh"
RESULTS = ROOT / "bench" / "results"
NAME = "mlops-bench"
LABEL = "app.kubernetes.io/managed-by=mlops.platform"
# Server-set fields that a client never sends.
STRIP_META = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "selfLink")


def env() -> dict:
    cache = pathlib.Path(os.environ.get("MLOPS_CACHE_DIR", pathlib.Path.home() / ".cache" / "mlops-platform"))
    return {
        **os.environ,
        "MLOPS_CLUSTER_NAME": NAME,
        "MLOPS_CLUSTER_NODES": "2",
        "MLOPS_KUBECONFIG": str(cache / f"{NAME}.kubeconfig"),
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"),
        "ANSIBLE_NOCOLOR": "1",
        "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
    }


ENV = env()
KUBECONFIG = ENV["MLOPS_KUBECONFIG"]


def cluster_settings() -> dict:
    out = subprocess.run([str(CLUSTER), "env"], capture_output=True, text=True, check=True, env=ENV).stdout
    return dict(line.split("=", 1) for line in out.split())


_SETTINGS = cluster_settings()
KUBECTL = str(pathlib.Path(_SETTINGS["MLOPS_CACHE_DIR"]) / "bin" / f"kubernetes-{_SETTINGS['K8S_VERSION']}" / "kubectl")


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, env=ENV, cwd=ROOT, check=False, **kwargs)
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(argv)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def fresh_cluster() -> None:
    run([str(CLUSTER), "down"])
    run([str(CLUSTER), "up"])


def timed(argv: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = run(argv)
    return time.perf_counter() - start, result.stdout


def converge(teams_file: str | None) -> tuple[float, str]:
    argv = ["ansible-playbook", "playbooks/site.yml", "-i", "inventories/local",
            "-e", f"cluster_provider=kwok cluster_name={NAME} cluster_kubeconfig={KUBECONFIG}"]
    if teams_file:
        argv += ["-e", f"@{teams_file}"]
    return timed(argv)


def changed(stdout: str) -> int:
    line = next(line for line in stdout.splitlines() if line.startswith("localhost") and "changed=" in line)
    return int(line.split("changed=")[1].split()[0])


def strip_server_defaults(item: dict) -> None:
    """Drop what controllers and the API server filled in, which a client must not send back."""
    spec = item.get("spec") or {}
    if item["kind"] == "Job":
        spec.pop("selector", None)
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        for key in ("controller-uid", "job-name", "batch.kubernetes.io/controller-uid", "batch.kubernetes.io/job-name"):
            labels.pop(key, None)
    elif item["kind"] == "Service":
        for key in ("clusterIP", "clusterIPs"):
            spec.pop(key, None)
    elif item["kind"] == "PersistentVolumeClaim":
        spec.pop("volumeName", None)
    elif item["kind"] == "PersistentVolume":
        spec.pop("claimRef", None)


def export_objects(dest: pathlib.Path) -> int:
    """Write what the collection created, as a client would send it, to dest/objects.yaml."""
    kinds = run([KUBECTL, "--kubeconfig", KUBECONFIG, "api-resources", "--verbs=list,create", "-o", "name"]).stdout.split()
    kinds = [k for k in kinds if k not in ("events", "events.events.k8s.io", "endpoints", "endpointslices.discovery.k8s.io",
                                           "pods", "replicasets.apps", "controllerrevisions.apps")]
    listing = json.loads(run([KUBECTL, "--kubeconfig", KUBECONFIG, "get", ",".join(kinds), "-A", "-l", LABEL, "-o", "json"]).stdout)
    objects = []
    for item in listing["items"]:
        item.pop("status", None)
        meta = item["metadata"]
        for key in STRIP_META:
            meta.pop(key, None)
        annotations = meta.get("annotations") or {}
        for key in [k for k in annotations if k.startswith(("kubectl.kubernetes.io/", "pv.kubernetes.io/"))]:
            annotations.pop(key)
        strip_server_defaults(item)
        objects.append(item)
    # The CRDs our custom resources need (installed by the roles, labelled or not).
    groups = {o["apiVersion"].split("/")[0] for o in objects if "." in o["apiVersion"].split("/")[0]
              and not o["apiVersion"].split("/")[0].endswith(".k8s.io")}
    have = {o["metadata"]["name"] for o in objects if o["kind"] == "CustomResourceDefinition"}
    crds = json.loads(run([KUBECTL, "--kubeconfig", KUBECONFIG, "get", "crd", "-o", "json"]).stdout)["items"]
    for crd in crds:
        if crd["spec"]["group"] in groups and crd["metadata"]["name"] not in have:
            crd.pop("status", None)
            for key in STRIP_META:
                crd["metadata"].pop(key, None)
            objects.append(crd)
    first = [o for o in objects if o["kind"] in ("CustomResourceDefinition", "Namespace")]
    rest = [o for o in objects if o["kind"] not in ("CustomResourceDefinition", "Namespace")]
    (dest / "1-crds-namespaces.yaml").write_text(yaml.safe_dump_all(first, sort_keys=False))
    (dest / "2-objects.yaml").write_text(yaml.safe_dump_all(rest, sort_keys=False))
    return len(objects)


def kubectl_apply(dest: pathlib.Path) -> float:
    """kubectl's best: CRDs and namespaces, wait until the CRDs are served, then everything else."""
    apply = [KUBECTL, "--kubeconfig", KUBECONFIG, "apply", "--server-side", "--field-manager=bench", "--force-conflicts", "-f"]
    start = time.perf_counter()
    run([*apply, str(dest / "1-crds-namespaces.yaml")])
    run([KUBECTL, "--kubeconfig", KUBECONFIG, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"])
    run([*apply, str(dest / "2-objects.yaml")])
    return time.perf_counter() - start


def stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def teams_file(count: int, template: dict, directory: pathlib.Path) -> str:
    teams = []
    for index in range(count):
        team = copy.deepcopy(template)
        team["name"] = f"bench-team-{index:03d}"
        team.pop("namespaces", None)
        for key in ("cost",):
            if isinstance(team.get(key), dict):
                team[key] = {**team[key], "cost_center": team["name"]}
        teams.append(team)
    path = directory / f"teams-{count}.yml"
    path.write_text(yaml.safe_dump({"teams": teams}))
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--teams", default="1,10,30,100")
    args = parser.parse_args()
    counts = [int(n) for n in args.teams.split(",") if n]
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "reps": args.reps}
    work = pathlib.Path(tempfile.mkdtemp(prefix="mlops-bench-"))
    try:
        cold, noop, floor_cold, floor_noop = [], [], [], []
        for _rep in range(args.reps):
            fresh_cluster()
            seconds = converge(None)[0]
            cold.append(seconds)
            seconds, out = converge(None)
            if changed(out):
                print(f"warning: no-op converge reported changed={changed(out)}", file=sys.stderr)
            noop.append(seconds)
        for _rep in range(args.reps - 1):
            noop.append(converge(None)[0])
        results["objects"] = export_objects(work)
        for _rep in range(args.reps):
            fresh_cluster()
            floor_cold.append(kubectl_apply(work))
            floor_noop.append(kubectl_apply(work))
        results["converge_cold"] = stats(cold)
        results["converge_noop"] = stats(noop)
        results["kubectl_cold"] = stats(floor_cold)
        results["kubectl_noop"] = stats(floor_noop)
        results["ratio_noop"] = results["converge_noop"]["median"] / results["kubectl_noop"]["median"]
        results["ratio_cold"] = results["converge_cold"]["median"] / results["kubectl_cold"]["median"]

        template = yaml.safe_load((ROOT / "inventories/local/group_vars/all/teams.yml").read_text())["teams"][0]
        scaling = {}
        fresh_cluster()
        for count in counts:
            path = teams_file(count, template, work)
            fresh_cluster()
            cold_s = converge(path)[0]
            noop_s = [converge(path)[0] for _rep in range(max(1, args.reps - 1))]
            scaling[count] = {"cold": cold_s, "noop": statistics.median(noop_s)}
        results["scaling"] = scaling
        if len(counts) > 1:
            low, high = min(counts), max(counts)
            results["noop_seconds_per_team"] = (scaling[high]["noop"] - scaling[low]["noop"]) / (high - low)
            results["cold_seconds_per_team"] = (scaling[high]["cold"] - scaling[low]["cold"]) / (high - low)
    finally:
        run([str(CLUSTER), "down"])
    report(results)


def report(results: dict) -> None:
    def row(name, s):
        return f"| {name} | {s['median']:.2f} | {s['min']:.2f}-{s['max']:.2f} |"

    lines = [
        f"Measured {results['date']} with `bench/run.py --reps {results['reps']}` on the offline cluster "
        f"({results['objects']} objects).",
        "",
        "| what | median s | range s |",
        "|---|---|---|",
        row("site.yml cold converge", results["converge_cold"]),
        row("site.yml no-op converge", results["converge_noop"]),
        row("kubectl apply --server-side, cold", results["kubectl_cold"]),
        row("kubectl apply --server-side, no-op", results["kubectl_noop"]),
        "",
        f"Ratios: no-op converge / kubectl no-op = **{results['ratio_noop']:.1f}x**; "
        f"cold converge / kubectl cold = **{results['ratio_cold']:.1f}x**.",
        "",
        "| teams | cold s | no-op s |",
        "|---|---|---|",
    ]
    for count, values in results["scaling"].items():
        lines.append(f"| {count} | {values['cold']:.2f} | {values['noop']:.2f} |")
    if "noop_seconds_per_team" in results:
        lines += ["", f"Per added team: no-op +{results['noop_seconds_per_team']:.3f} s, cold +{results['cold_seconds_per_team']:.3f} s."]
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (RESULTS / "latest.md").write_text(text)
    readme = ROOT / "README.md"
    content = readme.read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start in content and end in content:
        head, rest = content.split(start, 1)
        tail = rest.split(end, 1)[1]
        readme.write_text(f"{head}{start}\n{text}{end}{tail}")
    print(text)


if __name__ == "__main__":
    main()
