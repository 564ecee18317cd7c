"""Fixtures shared by the unit and integration tests."""

from __future__ import annotations

import pytest
from built_collection import InstalledCollection, build_and_install


@pytest.fixture(scope="session")
def installed_collection(tmp_path_factory) -> InstalledCollection:
    """The collection built, checked for planted files and installed offline outside the checkout."""
    return build_and_install(tmp_path_factory.mktemp("built-collection"))
