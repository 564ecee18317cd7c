# Copyright: mlops.platform maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Kubernetes resource quantities: parse, compare, add and format them exactly.

The grammar is the API server's (k8s.io/apimachinery/pkg/api/resource): a signed decimal
number followed by a binary-SI suffix (Ki Mi Gi Ti Pi Ei), a decimal-SI suffix (n u m k M G
T P E) or a decimal exponent (e3, E-2). Values are kept as ``fractions.Fraction`` so that
``0.5`` equals ``500m`` and sums never drift through floating point. Used wherever a role
checks that requests fit limits or that defaults fit a ResourceQuota.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from fractions import Fraction
from typing import Union

QuantityInput = Union[str, int, float]  # noqa: UP007 - a runtime alias pylint understands

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_QUANTITY_RE = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)


class QuantityError(ValueError):
    """Raised for a string that is not a Kubernetes quantity."""


def parse_quantity(value: QuantityInput) -> Fraction:
    """Return the exact value of a Kubernetes quantity (``"500m"`` -> ``Fraction(1, 2)``).

    Integers and floats from YAML are accepted as plain numbers; booleans are not.
    """
    if isinstance(value, bool) or value is None:
        raise QuantityError(f"{value!r} is not a quantity")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(str(value))
    text = str(value).strip()
    match = _QUANTITY_RE.match(text)
    if not match:
        raise QuantityError(
            f"{value!r} is not a Kubernetes quantity (expected a number with an optional suffix "
            "such as 500m, 2, 1.5, 512Mi, 64Gi, 1Ti, 1e3)"
        )
    number = Fraction(match.group("number"))
    suffix = match.group("suffix") or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix[:1] in ("e", "E"):
        return number * Fraction(10) ** int(suffix[1:])
    return number * _DECIMAL[suffix]


def is_quantity(value: QuantityInput) -> bool:
    """True when ``value`` parses as a Kubernetes quantity."""
    try:
        parse_quantity(value)
    except QuantityError:
        return False
    return True


def size_errors(name: str, value: QuantityInput, allow_empty: bool = False) -> list[str]:
    """``[message]`` when the setting ``name`` is not a size above zero (a volume, a claim); ``[]`` otherwise.

    ``allow_empty``: ``""`` means "no volume" for this setting and is accepted.
    """
    if value is None or (allow_empty and value == ""):
        return []
    fix = "write a size above zero such as 10Gi" + (", or '' for none" if allow_empty else "")
    try:
        amount = parse_quantity(value)
    except QuantityError as exc:
        return [f"{name}: {exc}. Fix: {fix}"]
    if amount <= 0:
        return [f"{name}: {value!r} is {'negative' if amount < 0 else 'zero'}. Fix: {fix}"]
    return []


def compare_quantities(left: QuantityInput, right: QuantityInput) -> int:
    """-1, 0 or 1 as ``left`` is smaller than, equal to or larger than ``right``."""
    a, b = parse_quantity(left), parse_quantity(right)
    return (a > b) - (a < b)


def sum_quantities(values: Iterable[QuantityInput]) -> Fraction:
    """Exact sum of quantities (e.g. the requests of all containers of a workload)."""
    return sum((parse_quantity(v) for v in values), Fraction(0))


def canonical_quantity(value: QuantityInput) -> str:
    """The string the API server stores for ``value`` (``"0.5"`` -> ``"500m"``, ``"1024Mi"`` -> ``"1Gi"``).

    Like the server, keep the input's family: binary suffixes stay binary (values below
    1024 fall back to decimal), decimal and exponent forms come out decimal-SI.
    """
    amount = parse_quantity(value)
    match = _QUANTITY_RE.match(str(value).strip()) if isinstance(value, str) else None
    binary = bool(match and match.group("suffix") in _BINARY) and abs(amount) >= 1024
    return format_quantity(amount, binary=binary)


def format_quantity(value: Fraction | int, binary: bool = False) -> str:
    """Render an exact value as the shortest canonical quantity string.

    ``binary=True`` prefers Ki/Mi/Gi/... (memory, storage); otherwise decimal suffixes
    (``m`` for fractions of a core). Values that fit no suffix exactly fall back to ``n``
    or a plain integer.
    """
    value = Fraction(value)
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    value = abs(value)
    if binary and value.denominator == 1:
        for suffix, factor in sorted(_BINARY.items(), key=lambda kv: -kv[1]):
            if value % factor == 0:
                return f"{sign}{value // factor}{suffix}"
    for suffix in ("E", "P", "T", "G", "M", "k", "", "m", "u", "n"):
        scaled = value / _DECIMAL[suffix]
        if scaled.denominator == 1:
            return f"{sign}{scaled.numerator}{suffix}"
    # Finer than a nano-unit: the API server rounds such values up, so do we.
    return f"{sign}{-(-value.numerator * 10**9 // value.denominator)}n"
