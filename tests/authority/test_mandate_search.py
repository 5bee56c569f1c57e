"""Searching mandates by id, scope or principal name, and the blocked status, on each backend."""

from __future__ import annotations

from caracal.services.facade import Caracal
from tests.authority.conftest import World, ok


def test_search_by_id_scope_and_name(world: World) -> None:
    root = ok(world.issue("alice", "orch", depth=2)).json()["id"]
    child = ok(world.delegate(root, "w1")).json()["id"]
    with Caracal.open("demo") as caracal:
        m = caracal.mandates

        def found(term: str, **page: int) -> list[str]:
            return [r["id"] for r in m.listing(search=term, **page)]

        assert found(root) == [root] and found(root.upper()) == [root]  # an id, any case
        assert found(root[:-3]) == [r for r in (child, root) if r.startswith(root[:-3])]
        assert found("w1") == [child] and m.count(search="w1") == 1  # the subject's name
        assert found("ALICE") == [root]  # the issuer's name, any case
        assert found("action:write") == [root]  # a scope (the child kept read only)
        assert found("action:read") == [child, root]  # newest first
        assert found("action:read", limit=1) == [child]
        assert found("action:read", limit=1, offset=1) == [root]
        assert found("zzz") == [] and m.count(search="zzz") == 0
        assert found("100%") == [] and found("read_") == []  # wildcards are plain characters


def test_blocked_only_when_something_blocks(world: World) -> None:
    root = ok(world.issue("alice", "orch", depth=2)).json()["id"]
    child = ok(world.delegate(root, "w1")).json()["id"]
    with Caracal.open("demo") as caracal:
        m = caracal.mandates
        assert m.count(status="blocked") == 0 and m.count(status="active") == 2
        caracal.principals.suspend("orch")  # the root's subject: root and child blocked
        assert {r["id"] for r in m.listing(status="blocked")} == {root, child}
        assert m.count(status="blocked") == 2 and m.count(status="active") == 0
        assert {r["status"] for r in m.listing()} == {"blocked"}
