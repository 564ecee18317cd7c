"""Benchmark the converge of the local platform against the kubectl floor (not a test).

On a dedicated offline cluster (`mlops-bench`, its own kubeconfig; the everyday cluster is
left alone) this measures, with several repetitions each (median and spread):

- cold converge of playbooks/site.yml on inventories/local (fresh cluster each time);
- no-op converge (already converged);
- the floor: `kubectl apply --server-side` of exactly the objects the collection sent, as the
  cold converge recorded them (`mlops_render_dir`: every k8s_bundle and seldon_runtime call
  writes its definitions there): cold on a fresh cluster in kubectl's best order (CRDs and
  namespaces, wait until the CRDs are established, the rest), also followed by waiting until
  the same workloads are ready as the converge does; no-op as one apply of every object;
- scaling: the same four figures with N generated teams (copies of the first local team).

It prints a table and the ratios, writes bench/results/latest.json and latest.md, and
rewrites the README's performance section between its markers. Timings are noisy: compare
ratios from the same run. Usage: .venv/bin/python bench/run.py [--reps 3] [--teams 1,10,30,100] [--scaling-reps 1]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import pathlib
import shutil
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


def converge(teams_file: str | None, render_dir: pathlib.Path | None = None, profile: bool = False) -> tuple[float, str]:
    argv = ["ansible-playbook", "playbooks/site.yml", "-i", "inventories/local",
            "-e", f"cluster_provider=kwok cluster_name={NAME} cluster_kubeconfig={KUBECONFIG}"]
    if teams_file:
        argv += ["-e", f"@{teams_file}"]
    if render_dir:
        argv += ["-e", f"mlops_render_dir={render_dir}"]
    if profile:
        ENV["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_tasks"
        ENV["PROFILE_TASKS_TASK_OUTPUT_LIMIT"] = "10"
    try:
        return timed(argv)
    finally:
        ENV.pop("ANSIBLE_CALLBACKS_ENABLED", None)
        ENV.pop("PROFILE_TASKS_TASK_OUTPUT_LIMIT", None)


def changed(stdout: str) -> int:
    line = next(line for line in stdout.splitlines() if line.startswith("localhost") and "changed=" in line)
    return int(line.split("changed=")[1].split()[0])


def top_tasks(stdout: str) -> list[str]:
    """The profile_tasks recap lines ("role : task ---- 1.23s"), slowest first."""
    lines = stdout.split("TASKS RECAP", 1)[-1].splitlines()
    return [line.strip() for line in lines if line.rstrip().endswith("s") and " --" in line][:10]


def floor_files(rendered: pathlib.Path, dest: pathlib.Path) -> tuple[int, list[str]]:
    """What the collection sent, for kubectl: CRDs and namespaces, then the rest (and both in one
    file for the no-op apply); returns the object count and the workloads the converge waits for."""
    objects = [doc for path in sorted(rendered.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]
    first = [o for o in objects if o["kind"] in ("CustomResourceDefinition", "Namespace")]
    rest = [o for o in objects if o["kind"] not in ("CustomResourceDefinition", "Namespace")]
    dest.mkdir(parents=True, exist_ok=True)
    for name, docs in (("1-crds-namespaces.yaml", first), ("2-objects.yaml", rest), ("all.yaml", first + rest)):
        path = dest / name
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        path.chmod(0o600)  # the collection's Secrets are in there
    workloads = [f"{o['kind'].lower()}/{o['metadata']['name']} -n {o['metadata']['namespace']}" for o in objects
                 if o["kind"] in ("Deployment", "StatefulSet", "Job")]
    return len(objects), workloads


KUBECTL_APPLY = ["apply", "--server-side", "--field-manager=bench", "--force-conflicts", "-f"]


def kubectl(*args: str) -> None:
    run([KUBECTL, "--kubeconfig", KUBECONFIG, *args])


def kubectl_cold(dest: pathlib.Path, workloads: list[str]) -> tuple[float, float]:
    """kubectl's best on an empty cluster: CRDs and namespaces, wait until the CRDs are served,
    everything else; then also until the workloads are ready, as the converge waits.
    Returns (apply seconds, apply-and-wait seconds)."""
    start = time.perf_counter()
    kubectl(*KUBECTL_APPLY, str(dest / "1-crds-namespaces.yaml"))
    kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    kubectl(*KUBECTL_APPLY, str(dest / "2-objects.yaml"))
    applied = time.perf_counter() - start
    for workload in workloads:
        kind_name, namespace = workload.split(" -n ")
        if kind_name.startswith("job/"):
            kubectl("wait", "--for=condition=Complete", kind_name, "-n", namespace, "--timeout=300s")
        else:
            kubectl("rollout", "status", kind_name, "-n", namespace, "--timeout=300s")
    return applied, time.perf_counter() - start


def kubectl_noop(dest: pathlib.Path) -> float:
    """kubectl's best when everything exists: one apply of every object."""
    start = time.perf_counter()
    kubectl(*KUBECTL_APPLY, str(dest / "all.yaml"))
    return time.perf_counter() - start


def stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def teams_file(count: int, template: dict, directory: pathlib.Path) -> str:
    teams = []
    for index in range(count):
        team = copy.deepcopy(template)
        team["name"] = f"bench-team-{index:03d}"
        team.pop("namespaces", None)
        if isinstance(team.get("cost"), dict):
            team["cost"] = {**team["cost"], "cost_center": team["name"]}
        teams.append(team)
    path = directory / f"teams-{count}.yml"
    path.write_text(yaml.safe_dump({"teams": teams}))
    return str(path)


def measure(reps: int, work: pathlib.Path, label: str, teams: str | None = None) -> dict:
    """Cold and no-op converge, then kubectl cold and no-op of exactly what the converge sent."""
    cold, noop, floor_cold, floor_cold_wait, floor_noop = [], [], [], [], []
    rendered = work / f"rendered-{label}"
    for rep in range(reps):
        fresh_cluster()
        seconds, _out = converge(teams, rendered if rep == 0 else None)
        cold.append(seconds)
        seconds, out = converge(teams)
        if changed(out):
            print(f"warning: {label}: no-op converge reported changed={changed(out)}", file=sys.stderr)
        noop.append(seconds)
    for _rep in range(max(0, reps - 1)):
        noop.append(converge(teams)[0])
    _seconds, profiled = converge(teams, profile=True)
    count, workloads = floor_files(rendered, work / f"floor-{label}")
    for _rep in range(reps):
        fresh_cluster()
        applied, waited = kubectl_cold(work / f"floor-{label}", workloads)
        floor_cold.append(applied)
        floor_cold_wait.append(waited)
        floor_noop.append(kubectl_noop(work / f"floor-{label}"))
    result = {"objects": count, "converge_cold": stats(cold), "converge_noop": stats(noop),
              "kubectl_cold": stats(floor_cold), "kubectl_cold_wait": stats(floor_cold_wait),
              "kubectl_noop": stats(floor_noop), "top_noop_tasks": top_tasks(profiled)}
    result["ratio_noop"] = result["converge_noop"]["median"] / result["kubectl_noop"]["median"]
    result["ratio_cold"] = result["converge_cold"]["median"] / result["kubectl_cold"]["median"]
    result["ratio_cold_wait"] = result["converge_cold"]["median"] / result["kubectl_cold_wait"]["median"]
    print(f"{label}: {json.dumps({k: v for k, v in result.items() if k != 'top_noop_tasks'}, default=str)}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--teams", default="1,10,30,100")
    parser.add_argument("--scaling-reps", type=int, default=1, help="repetitions of each team count (default 1)")
    args = parser.parse_args()
    counts = [int(n) for n in args.teams.split(",") if n]
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "reps": args.reps,
                     "scaling_reps": args.scaling_reps, "command": " ".join(["bench/run.py", *sys.argv[1:]])}
    work = pathlib.Path(tempfile.mkdtemp(prefix="mlops-bench-"))
    try:
        results["platform"] = measure(args.reps, work, "platform")
        template = yaml.safe_load((ROOT / "inventories/local/group_vars/all/teams.yml").read_text())["teams"][0]
        results["scaling"] = {count: measure(args.scaling_reps, work, f"teams-{count}", teams_file(count, template, work))
                              for count in counts}
        if len(counts) > 1:
            low, high = min(counts), max(counts)
            for phase in ("noop", "cold"):
                rise = results["scaling"][high][f"converge_{phase}"]["median"] - results["scaling"][low][f"converge_{phase}"]["median"]
                results[f"{phase}_seconds_per_team"] = rise / (high - low)
    finally:
        run([str(CLUSTER), "down"])
        shutil.rmtree(work, ignore_errors=True)
    report(results)


def report(results: dict) -> None:
    def row(name, s):
        return f"| {name} | {s['median']:.2f} | {s['min']:.2f}-{s['max']:.2f} |"

    platform = results["platform"]
    lines = [
        f"Measured {results['date']} with `{results['command']}` on the offline cluster (2 KWOK nodes): "
        f"{platform['objects']} objects, {results['reps']} repetitions.",
        "",
        "| what | median s | range s |",
        "|---|---|---|",
        row("site.yml cold converge (fresh cluster)", platform["converge_cold"]),
        row("site.yml no-op converge", platform["converge_noop"]),
        row("kubectl apply --server-side, cold (same objects, CRDs first)", platform["kubectl_cold"]),
        row("kubectl apply, cold, then wait until the same workloads are ready", platform["kubectl_cold_wait"]),
        row("kubectl apply --server-side, no-op (one apply of every object)", platform["kubectl_noop"]),
        "",
        f"Ratios: no-op converge / kubectl no-op = **{platform['ratio_noop']:.1f}x** (target 2x); "
        f"cold converge / kubectl cold apply = **{platform['ratio_cold']:.1f}x** (target 3x); "
        f"cold converge (which waits until MinIO, its bucket Job, PostgreSQL and MLflow are ready) / "
        f"kubectl apply and wait = **{platform['ratio_cold_wait']:.1f}x**.",
        "",
        f"Scaling with N generated teams ({results['scaling_reps']} run each):",
        "",
        "| teams | objects | cold s | no-op s | kubectl cold s | kubectl cold+wait s | kubectl no-op s | no-op ratio | cold ratio | cold+wait ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for count, m in results["scaling"].items():
        lines.append(f"| {count} | {m['objects']} | {m['converge_cold']['median']:.2f} | {m['converge_noop']['median']:.2f} | "
                     f"{m['kubectl_cold']['median']:.2f} | {m['kubectl_cold_wait']['median']:.2f} | "
                     f"{m['kubectl_noop']['median']:.2f} | {m['ratio_noop']:.1f}x | {m['ratio_cold']:.1f}x | "
                     f"{m['ratio_cold_wait']:.1f}x |")
    if "noop_seconds_per_team" in results:
        lines += ["", f"Per added team: no-op +{results['noop_seconds_per_team']:.3f} s (target 0.3 s), "
                      f"cold +{results['cold_seconds_per_team']:.3f} s."]
    lines += ["", "Slowest tasks of a no-op converge of the local platform (ansible.posix.profile_tasks):", "", "```",
              *platform["top_noop_tasks"], "```"]
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
