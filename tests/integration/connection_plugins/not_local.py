"""A local connection under another name: modules run as on any remote target (tests only)."""

from __future__ import annotations

from ansible.plugins.connection.local import Connection as LocalConnection

DOCUMENTATION = """
name: not_local
short_description: the local connection, not recognised as local by the collection's actions
description: Lets tests run the collection's modules the way a remote target would.
author: mlops.platform maintainers
"""


class Connection(LocalConnection):
    transport = "not_local"
