"""The README table of what differs between the four inventories, generated from them.

    python scripts/inventory_table.py          rewrite the README section between its markers
    python scripts/inventory_table.py --check  exit 1 when the README or the inventories drifted

Also checks that every inventory sets the same top-level keys: environments differ in values only.
"""

from __future__ import annotations

import json
import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
ENVIRONMENTS = ("local", "dev", "staging", "prod")
START, END = "<!-- inventories:start -->", "<!-- inventories:end -->"


def load(env: str) -> dict:
    merged: dict = {}
    for path in sorted((ROOT / "inventories" / env / "group_vars" / "all").glob("*.yml")):
        merged.update(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    return merged


def summary(value) -> str:
    if isinstance(value, list) and value and all(isinstance(v, dict) and "name" in v for v in value):
        return ", ".join(str(v["name"]) for v in value)
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def render(data: dict[str, dict]) -> str:
    keys = sorted(set().union(*(d.keys() for d in data.values())))
    differing = [k for k in keys if len({json.dumps(d.get(k), sort_keys=True) for d in data.values()}) > 1]
    lines = ["| setting | " + " | ".join(ENVIRONMENTS) + " |", "|---" * (len(ENVIRONMENTS) + 1) + "|"]
    for key in differing:
        lines.append(f"| `{key}` | " + " | ".join(summary(data[e].get(key)) for e in ENVIRONMENTS) + " |")
    same = [k for k in keys if k not in differing]
    lines += ["", f"Same in all four: {', '.join(f'`{k}`' for k in same) or 'nothing'}."]
    return "\n".join(lines) + "\n"


def key_problems(data: dict[str, dict]) -> list[str]:
    keys = set().union(*(d.keys() for d in data.values()))
    return [f"inventories/{env} does not set {key}" for env in ENVIRONMENTS for key in sorted(keys - data[env].keys())]


def main() -> int:
    data = {env: load(env) for env in ENVIRONMENTS}
    problems = key_problems(data)
    readme = ROOT / "README.md"
    content = readme.read_text(encoding="utf-8")
    head, rest = content.split(START, 1)
    tail = rest.split(END, 1)[1]
    wanted = f"{head}{START}\n{render(data)}{END}{tail}"
    if "--check" in sys.argv:
        if wanted != content:
            problems.append("README.md inventory table is out of date: run python scripts/inventory_table.py")
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    readme.write_text(wanted, encoding="utf-8")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
