# Copyright: mlops.platform maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Plain copies of Ansible's lazily templated values, for filter plugins.

ansible-core 2.19+ hands filters lazy containers: every read of an item re-enters the
templar. Model code that walks and copies nested data (the team model) then slows from
milliseconds to a minute for a dozen teams. Copy the arguments once into plain dicts,
lists and strs, then compute on those.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    # Templated numbers can be tagged int/float subclasses, which yaml.safe_dump refuses.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


def plain_args(func: Callable) -> Callable:
    """Decorator: call ``func`` with plain copies of its arguments."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*map(plain, args), **{k: plain(v) for k, v in kwargs.items()})

    return wrapper


PACKAGE = "ansible_collections.mlops.platform.plugins.module_utils."


def plain_filters(module: str, names: Mapping[str, str]) -> dict[str, Callable]:
    """Filters {filter name: function name of module_utils/<module>.py}, each with plain arguments.

    The module is imported at the first call, not when the filter file is loaded: every task
    worker that uses any of the collection's filters loads every filter file, and the
    collection loader compiles each imported source anew (no bytecode cache), about 10 ms
    for a large module; eager imports cost that in every worker.
    """

    def lazy(name: str) -> Callable:
        def call(*args, **kwargs):
            func = getattr(importlib.import_module(PACKAGE + module), name)
            return func(*map(plain, args), **{k: plain(v) for k, v in kwargs.items()})

        call.__name__ = call.__qualname__ = name
        return call

    return {filter_name: lazy(name) for filter_name, name in names.items()}
