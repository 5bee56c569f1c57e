"""A small populated workspace for authority tests: one provider, a principal of every kind,
broad policies. Built through the real CLI, on the backend the test runs on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.cli import Result, run_cli

if TYPE_CHECKING:
    from caracal.services.facade import Caracal

READ = "provider:github:action:read"
WRITE = "provider:github:action:write"
COMMENT = "provider:github:action:comment"
REPOS = "provider:github:resource:repos"
ISSUES = "provider:github:resource:issues"


def ok(result: Result) -> Result:
    assert result.code == 0, result
    return result


@dataclass
class World:
    ids: dict[str, str] = field(default_factory=dict)

    def register(self, kind: str, name: str) -> str:
        self.ids[name] = ok(
            run_cli("principal", "register", "--kind", kind, "--name", name)
        ).stdout.strip()
        return self.ids[name]

    def policy(self, name: str, validity: str = "1h", depth: int = 3, *extra: str) -> str:
        args = [
            "policy",
            "create",
            "--principal",
            name,
            "--max-validity",
            validity,
            "--resource",
            "provider:github:resource:*",
            "--action",
            "provider:github:action:*",
            "--delegation-depth",
            str(depth),
            *extra,
        ]
        return ok(run_cli(*args)).stdout.strip()

    def issue(
        self,
        issuer: str,
        subject: str,
        *,
        actions: tuple[str, ...] = (READ, WRITE),
        resources: tuple[str, ...] = (REPOS,),
        ttl: str = "30m",
        depth: int = 0,
        extra: tuple[str, ...] = (),
    ) -> Result:
        args = [
            "mandate",
            "issue",
            "--issuer",
            issuer,
            "--subject",
            subject,
            "--ttl",
            ttl,
            "--delegation-depth",
            str(depth),
            "--json",
            *extra,
        ]
        for scope in resources:
            args += ["--resource", scope]
        for scope in actions:
            args += ["--action", scope]
        return run_cli(*args)

    def delegate(
        self,
        source: str,
        subject: str,
        *,
        actions: tuple[str, ...] = (READ,),
        resources: tuple[str, ...] = (REPOS,),
        ttl: str = "10m",
        extra: tuple[str, ...] = (),
    ) -> Result:
        args = ["mandate", "delegate", source, "--subject", subject, "--ttl", ttl, "--json", *extra]
        for scope in resources:
            args += ["--resource", scope]
        for scope in actions:
            args += ["--action", scope]
        return run_cli(*args)

    @staticmethod
    def validate(mandate: str, action: str = READ, resource: str = REPOS, *extra: str) -> Result:
        return run_cli(
            "mandate",
            "validate",
            mandate,
            "--action",
            action,
            "--resource",
            resource,
            "--json",
            *extra,
        )

    @staticmethod
    def validate_token(
        token: str, action: str = READ, resource: str = REPOS, *extra: str
    ) -> Result:
        return run_cli(
            "mandate",
            "validate",
            "--token",
            token,
            "--action",
            action,
            "--resource",
            resource,
            "--json",
            *extra,
        )


@pytest.fixture
def world(backend: str, home: Path) -> World:
    ok(run_cli("workspace", "create", "demo"))
    ok(
        run_cli(
            "provider",
            "add",
            "github",
            "--base-url",
            "https://api.github.com",
            "--resource",
            "repos",
            "--resource",
            "issues",
            "--action",
            "repos:read",
            "--action",
            "repos:write",
            "--action",
            "issues:comment",
        )
    )
    w = World()
    for kind, name in [
        ("human", "alice"),
        ("orchestrator", "orch"),
        ("orchestrator", "orch2"),
        ("worker", "w1"),
        ("worker", "w2"),
        ("service", "svc"),
    ]:
        w.register(kind, name)
    for name in ("orch", "orch2", "w1", "w2", "svc"):
        w.policy(name)
    return w


# The ledger scenario (thirteen events) for the ledger tests; defined with its helpers.
@contextmanager
def github_workspace(bot_kind: str = "worker", depth: int = 0) -> Iterator[Caracal]:
    """Workspace "demo", opened in this process: provider github (repos, read), alice (a human)
    and bot with a policy over every github scope, valid an hour at most."""
    from caracal.core.providers import ProviderAction, ProviderResource, ProviderSpec
    from caracal.services.facade import Caracal
    from caracal.services.workspaces import WorkspaceManager

    WorkspaceManager().create("demo")
    with Caracal.open("demo") as opened:
        opened.providers.add(
            ProviderSpec(
                "github",
                "https://api.github.com",
                resources=(ProviderResource("repos"),),
                actions=(ProviderAction("repos", "read"),),
            )
        )
        opened.principals.register("human", "alice")
        opened.principals.register(bot_kind, "bot")
        opened.policies.create(
            "bot", "1h", ["provider:github:resource:*"], ["provider:github:action:*"], depth
        )
        yield opened


from tests.authority.ledger_world import scenario  # noqa: E402, F401
