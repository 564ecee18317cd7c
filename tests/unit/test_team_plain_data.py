"""plain_data: filters get plain copies of their arguments (plugins/module_utils/plain_data.py)."""

from __future__ import annotations

from collections import UserDict, UserList

from ansible_collections.mlops.platform.plugins.module_utils.plain_data import plain, plain_args


class LazyStr(str):
    """Stands in for Ansible's tagged strings."""


def test_plain_copies_nested_containers_into_builtin_types():
    lazy = UserDict({"a": UserList([LazyStr("x"), 1, UserDict({"b": None})])})
    result = plain(lazy)
    assert result == {"a": ["x", 1, {"b": None}]}
    # Exact built-in types, not subclasses: lazy wrappers subclass them.
    assert [type(result), type(result["a"]), type(result["a"][0])] == [dict, list, str]


def test_plain_args_passes_copies():
    seen = []

    @plain_args
    def probe(value, other=None):
        seen.append((type(value), type(other)))
        return value

    assert probe(UserList([1]), other=UserDict()) == [1]
    assert seen == [(list, dict)]
