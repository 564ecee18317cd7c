"""Kubernetes quantity arithmetic (plugins/module_utils/quantity.py)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from ansible_collections.mlops.platform.plugins.module_utils.quantity import (
    QuantityError,
    canonical_quantity,
    compare_quantities,
    format_quantity,
    is_quantity,
    parse_quantity,
    sum_quantities,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Fraction(1, 2)),
        ("0.5", Fraction(1, 2)),
        (".5", Fraction(1, 2)),
        ("2", Fraction(2)),
        (2, Fraction(2)),
        (1.5, Fraction(3, 2)),
        ("512Mi", Fraction(512 * 2**20)),
        ("64Gi", Fraction(64 * 2**30)),
        ("1Ti", Fraction(2**40)),
        ("1k", Fraction(1000)),
        ("1G", Fraction(10**9)),
        ("1e3", Fraction(1000)),
        ("1E-3", Fraction(1, 1000)),
        ("100n", Fraction(1, 10**7)),
        ("+3", Fraction(3)),
        ("-1", Fraction(-1)),
    ],
)
def test_parse(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "10 Gi", "1GB", "1gi", "Mi", "1Kb", None, True, "0x10"])
def test_parse_rejects_non_quantities(text):
    with pytest.raises(QuantityError):
        parse_quantity(text)
    assert not is_quantity(text)


def test_error_message_shows_examples():
    with pytest.raises(QuantityError, match=r"'10GB' is not a Kubernetes quantity .*512Mi"):
        parse_quantity("10GB")


def test_compare_and_sum_are_exact():
    assert compare_quantities("0.1", "100m") == 0
    assert compare_quantities("1Gi", "1G") == 1
    assert compare_quantities("999Mi", "1Gi") == -1
    assert sum_quantities(["100m"] * 10) == 1
    assert sum_quantities(["0.1", "0.2"]) == Fraction(3, 10)
    assert sum_quantities([]) == 0


@pytest.mark.parametrize(
    ("value", "binary", "text"),
    [
        (Fraction(1, 2), False, "500m"),
        (Fraction(20), False, "20"),
        (Fraction(2000), False, "2k"),
        (Fraction(2**30), True, "1Gi"),
        (Fraction(3 * 2**29), True, "1536Mi"),
        (Fraction(1000), True, "1k"),
        (Fraction(0), False, "0"),
        (Fraction(-250, 1000), False, "-250m"),
        (Fraction(1, 3 * 10**9), False, "1n"),
    ],
)
def test_format(value, binary, text):
    assert format_quantity(value, binary=binary) == text


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("0.5", "500m"), ("1024Mi", "1Gi"), ("64Gi", "64Gi"), (20, "20"), ("1000m", "1"), ("1Ti", "1Ti"),
     ("512Ki", "512Ki"), ("1000", "1k"), ("0.5Ki", "512")],
)
def test_canonical_matches_the_api_server(text, canonical):
    assert canonical_quantity(text) == canonical
