# Copyright: mlops.platform contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Version ordering and the upgrade guard: a converge never takes a component back to an older version.

``parse`` reads a version from a chart version (``2.10.2``, ``v2.10.0-rc.1``) or an image reference
(``ghcr.io/mlflow/mlflow:v3.17.2-full``, ``postgres:16.6-alpine@sha256:...``): its numbers compare
as numbers (2.10 > 2.9), a leading ``v`` is dropped, trailing zeros do not count (16.6 == 16.6.0),
a pre-release suffix (rc, alpha, beta, dev, pre, preview) sorts before its release, and any other
suffix (a variant such as ``-alpine`` or ``-full``) is ignored. ``guard_errors`` compares requested
versions with live ones and returns one message per refusal, each naming the variable, both
versions, why, and the fix; the roles run it before their first write.
"""

from __future__ import annotations

import os
import re

__all__ = ["chart_archive_errors", "compare", "guard_errors", "helm_chart_version", "helm_release_guard", "image_tag", "parse",
           "shown"]

_VERSION = re.compile(r"^[vV]?(\d+(?:\.\d+)*)(.*)$")
_PRERELEASE = re.compile(r"^[-.+_~]?(rc|alpha|beta|a|b|c|dev|pre|preview)[-._]?(\d*)(?![a-z])", re.IGNORECASE)
# The first '-' followed by a version (digits and a dot) in a Helm chart field: names hold '-v2-' but no dotted number.
_CHART_VERSION = re.compile(r"^.*?-(v?\d+\.\d+.*)$")
_PRE_RANK = {"dev": 0, "a": 1, "alpha": 1, "b": 2, "beta": 2, "pre": 3, "preview": 3, "c": 4, "rc": 4}


def image_tag(reference: str) -> str:
    """The tag of an image reference (digest dropped), or the text itself when it is not one; '' without a tag."""
    text = str(reference).strip().split("@", 1)[0]
    if "/" not in text and ":" not in text:
        return text
    last = text.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def helm_chart_version(chart) -> str:
    """The version in a Helm release's chart field (seldon-core-v2-setup-2.10.2 gives 2.10.2); '' without one."""
    match = _CHART_VERSION.match(str(chart or ""))
    return match.group(1) if match else ""


def helm_release_guard(status: dict, variable: str, requested: str, reason: str, downgrade_fix: str,
                       allow_downgrade: bool = False, downgrade_flag: str = "") -> dict:
    """The guard (for ``guard_errors``) of a chart version setting against an installed Helm release: ``status``
    of kubernetes.core.helm_info (its chart field holds the live version); empty, nothing is live yet."""
    guard = {"variable": variable, "requested": str(requested), "reason": reason, "downgrade_fix": downgrade_fix,
             "allow_downgrade": bool(allow_downgrade), "downgrade_flag": downgrade_flag or f"{variable}_allow_downgrade"}
    if status:
        guard.update(live=helm_chart_version(status.get("chart")),
                     source=f"Helm release {status.get('namespace', '')}/{status.get('name', '')}")
    return guard


def chart_archive_errors(archive: str, version: str, variable: str) -> list[str]:
    """An air-gapped chart archive (a path on the control node, where filters run) that is missing, not a file, or
    not of ``version`` (``helm pull --version`` names it <chart>-<version>.tgz); [] for an empty path (no archive)."""
    if not archive:
        return []
    if not os.path.isfile(archive) or not os.path.basename(archive).endswith(f"-{version}.tgz"):
        return [f"{variable} '{archive}' is missing or is not the {version} chart (the file name must end in "
                f"-{version}.tgz, as `helm pull --version` names it). Fix: copy the {version} archive there, or change "
                "the chart version"]
    return []


def parse(text) -> tuple | None:
    """A sortable key of the version in text (a version, or an image reference), or None when it holds none."""
    if text is None:
        return None
    match = _VERSION.match(image_tag(str(text)))
    if not match:
        return None
    numbers = [int(n) for n in match.group(1).split(".")]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()
    pre = _PRERELEASE.match(match.group(2))
    release = (0, _PRE_RANK[pre.group(1).lower()], int(pre.group(2) or 0)) if pre else (1, 0, 0)
    return (tuple(numbers), release)


def shown(text) -> str:
    """The version as people write it: the tag of an image reference, without a leading v."""
    tag = image_tag(str(text))
    return tag[1:] if tag[:1] in ("v", "V") and tag[1:2].isdigit() else tag


def compare(left, right) -> int | None:
    """-1, 0 or 1 as left is older than, the same as or newer than right; None when either holds no version."""
    a, b = parse(left), parse(right)
    if a is None or b is None:
        return None
    return (a > b) - (a < b)


def major(text) -> int | None:
    key = parse(text)
    return key[0][0] if key else None


def guard_errors(guards: list[dict]) -> list[str]:
    """One message per guard the requested version fails against the live one (nothing when it is not live yet).

    A guard: ``variable`` (the setting, as the message names it), ``requested`` and ``live`` (versions
    or image references; ``live`` None or '' when nothing runs yet), ``source`` (where the live version
    was read, e.g. 'StatefulSet mlflow/mlflow-postgresql'), ``allow_downgrade`` and ``downgrade_flag``
    (the setting that allows it), ``reason`` (why a downgrade is refused), optionally ``downgrade_fix`` (the way
    back, by default a restore from a backup); optionally ``major_flag``,
    ``allow_major_upgrade`` and ``major_procedure`` when a new major version needs a data migration first.
    A version that does not parse (a custom tag such as 'latest-build') cannot be ordered and is let through."""
    errors = []
    for guard in guards:
        live, requested = guard.get("live"), guard["requested"]
        if not live:
            continue
        order = compare(requested, live)
        if order is None:
            continue
        where = f" ({guard['source']})" if guard.get("source") else ""
        if order < 0 and not guard.get("allow_downgrade"):
            errors.append(
                f"{guard['variable']} {shown(requested)} < live {shown(live)}{where}: {guard['reason']}; nothing was changed."
                f" Fix: set {guard['variable']} to {shown(live)} or newer, or"
                f" {guard.get('downgrade_fix') or 'restore from a backup taken before the upgrade'}"
                f" and set {guard['downgrade_flag']}: true for that run")
        elif order > 0 and guard.get("major_flag") and not guard.get("allow_major_upgrade") \
                and major(requested) != major(live):
            errors.append(
                f"{guard['variable']} {shown(requested)} is a major upgrade from live {shown(live)}{where}:"
                f" {guard['major_procedure']}; nothing was changed. Fix: follow that procedure, then set"
                f" {guard['major_flag']}: true for that run, or keep major version {major(live)}")
    return errors
