"""`app.declarative`: export the workspace's state, plan a file against it, apply the plan in
one transaction through the same in-transaction functions every other front end uses (so each
change is its own ledger event), plus one event naming the file and the plan."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from caracal.core.durations import parse_duration
from caracal.core.errors import CaracalError, ConflictError, NotFoundError, RefusedError
from caracal.core.ledger import NewEvent
from caracal.core.mandates import Principal
from caracal.core.providers import spec_from_dict
from caracal.core.state_diff import Change, Plan, plan
from caracal.core.workspace_state import ProviderEntry, WorkspaceState
from caracal.home import config as cfg
from caracal.home.config_model import WorkspaceConfig
from caracal.services import change_feed
from caracal.services.declarative.current import (
    LAST_APPLIED,
    LAST_APPLIED_SHA,
    last_applied,
    read_state,
    state_digest,
)
from caracal.services.declarative.render import render
from caracal.services.declarative.settings import in_effect, with_settings
from caracal.services.declarative.source import DeclaredFile, parse_text
from caracal.services.ids import new_id
from caracal.services.principals import resolve
from caracal.store import ledger_rows, meta, policy_rows

if TYPE_CHECKING:
    from caracal.services.facade import Caracal

log = logging.getLogger(__name__)
APPLIED_EVENT = "declarative.applied"


@dataclass(frozen=True)
class PlanReport:
    """A plan and what it was computed from: the file's SHA-256 and the state's digest."""

    plan: Plan
    file_sha256: str
    state_sha256: str


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    file_sha256: str
    notes: tuple[str, ...]  # what the operator still has to do (e.g. credentials to set)


class DeclarativeService:
    def __init__(self, app: Caracal) -> None:
        self.app = app

    # ---- queries ------------------------------------------------------------------------
    def current(self) -> WorkspaceState:
        with self.app.store.read(snapshot=True) as conn:
            return self._current(conn)

    def export_text(self) -> str:
        return render(self.current(), self.app.name)

    def plan(self, source: DeclaredFile, *, allow_suspend: bool = False) -> PlanReport:
        with self.app.store.read(snapshot=True) as conn:
            current = self._current(conn)
        return PlanReport(
            plan(current, source.state, allow_suspend=allow_suspend),
            source.sha256,
            state_digest(current),
        )

    def drift(self) -> Plan | None:
        """What changed by hand since the last apply (as the changes applying that file again
        would make), or None when nothing was ever applied: for a dashboard's count and list."""
        with self.app.store.read() as conn:
            found = last_applied(conn)
        if found is None:
            return None
        return self.plan(parse_text(found[0], "the last applied file")).plan

    def last_applied(self) -> DeclaredFile:
        """The file last applied here, as it was (for drift: what changed by hand since)."""
        with self.app.store.read() as conn:
            found = last_applied(conn)
        if found is None:
            raise NotFoundError(
                f"Nothing was ever applied to workspace {self.app.name}; run "
                "`caracal apply -f FILE` first."
            )
        return parse_text(found[0], "the last applied file")

    # ---- apply --------------------------------------------------------------------------
    def apply(
        self,
        source: DeclaredFile,
        *,
        allow_suspend: bool = False,
        expected_state: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ApplyResult:
        """Apply `source` in one transaction. `expected_state`: the digest the reviewed plan
        was computed against; if the workspace moved since, nothing is applied."""
        environ = os.environ if env is None else env
        published: list[tuple[str, str]] = []
        settings = self._settings_to_write(source.state)
        written: list[bool] = []

        def work(conn: Connection) -> ApplyResult:
            # The store retries this whole on a lock conflict: start each attempt afresh.
            published.clear()
            if settings is not None and written:
                cfg.write_raw(self.app.paths.config, settings[0])
                written.clear()
            ledger_rows.lock_head(conn)  # authority changes take it first: see lock_head
            current = self._current(conn)
            before = state_digest(current)
            if expected_state is not None and before != expected_state:
                raise ConflictError(
                    "The workspace changed since the plan was made; nothing was applied. Run "
                    "`caracal plan` again and review it."
                )
            result = plan(current, source.state, allow_suspend=allow_suspend)
            refuse_blocked(result)
            notes: list[str] = []
            for change in result.changes:
                try:
                    self._make(conn, change, environ, notes, published)
                except CaracalError as exc:
                    raise type(exc)(
                        f"Cannot {change.verb} {change.kind} {change.name}: {exc.message} "
                        "Nothing was applied."
                    ) from None
            self.app.ledger.record(
                conn,
                NewEvent(
                    APPLIED_EVENT,
                    {
                        "file_sha256": source.sha256,
                        "state_before_sha256": before,
                        "summary": result.summary(),
                        "changes": [f"{c.op} {c.kind} {c.name}" for c in result.changes],
                    },
                ),
            )
            meta.put(conn, LAST_APPLIED, source.text)
            meta.put(conn, LAST_APPLIED_SHA, source.sha256)
            if settings is not None and any(c.kind == "setting" for c in result.changes):
                # Last, just before the commit; put back below if the commit fails.
                cfg.write_raw(self.app.paths.config, settings[1])
                written.append(True)
            return ApplyResult(result, source.sha256, tuple(notes))

        try:
            outcome = self.app.store.write(work)
        except BaseException:
            if settings is not None and written:
                cfg.write_raw(self.app.paths.config, settings[0])
            raise
        if outcome.plan.changes:
            self.app.validator.forget()
            for kind, ident in published:
                change_feed.publish(self.app, kind, [ident])
        log.info(
            "applied %s (sha256 %s): %s",
            source.name,
            source.sha256[:12],
            outcome.plan.summary_line(),
        )
        return outcome

    def _settings_to_write(
        self, state: WorkspaceState
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """config.yaml before and after the file's settings (checked now, before the store
        changes), or None when they are as the file says."""
        now = in_effect(self._config())
        changes = {k: v for k, v in state.settings.items() if now.get(k) != v}
        if not changes:
            return None
        return with_settings(
            self.app.paths.config, self.app.env, changes, self.app.cipher.decrypt_value
        )

    def _make(
        self,
        conn: Connection,
        change: Change,
        env: Mapping[str, str],
        notes: list[str],
        published: list[tuple[str, str]],
    ) -> None:
        if change.kind == "setting":
            return  # config.yaml is written once, after the store's changes
        if change.kind == "provider":
            self._provider(conn, change, env, notes, published)
        elif change.kind == "principal":
            self._principal(conn, change, published)
        elif change.kind == "policy":
            self._policy(conn, change)
        else:
            self._tool(conn, change, published)

    def _provider(
        self,
        conn: Connection,
        change: Change,
        env: Mapping[str, str],
        notes: list[str],
        published: list[tuple[str, str]],
    ) -> None:
        name = change.name
        if change.op == "-":
            self.app.providers.remove_in(conn, name)
            published.append(("provider.removed", name))
            return
        entry: ProviderEntry = change.desired
        spec = spec_from_dict(entry.model_dump(exclude={"credential_env"}))
        if change.op == "~":
            self.app.providers.redefine_in(conn, spec)
            published.append(("provider.updated", name))
            return
        credential = env.get(entry.credential_env) if entry.credential_env else None
        if entry.auth != "none" and not credential:
            notes.append(
                f"Provider {name} has no credential yet ({entry.credential_env} was not set): "
                f"`caracal provider update {name} --credential-env VAR`."
            )
        self.app.providers.add_in(conn, spec, credential or None)
        published.append(("provider.added", name))

    def _principal(
        self, conn: Connection, change: Change, published: list[tuple[str, str]]
    ) -> None:
        principals = self.app.principals
        if change.op == "+":
            new = change.desired
            principals.check_registration(new.kind, new.name, new.email)
            principals.register_in(
                conn, Principal(new_id("pr"), new.name, new.kind, "active"), new.email
            )
            if new.status == "active":
                return
            status = new.status
        else:
            status = change.desired.status if change.op == "~" else "suspended"
        updated = principals.set_status_in(conn, change.name, status)
        published.append((f"principal.{status}", updated.id))

    def _policy(self, conn: Connection, change: Change) -> None:
        if change.op == "-":
            active = policy_rows.active_for(conn, resolve(conn, change.name).id)
            if active is not None:
                self.app.policies.deactivate_in(conn, active.id)
            return
        wanted = change.desired
        self.app.policies.create_in(
            conn,
            change.name,
            parse_duration(wanted.max_validity),
            wanted.resources,
            wanted.actions,
            wanted.delegation_depth,
            replace=True,
        )

    def _tool(self, conn: Connection, change: Change, published: list[tuple[str, str]]) -> None:
        if change.op != "+":
            self.app.tools.remove_in(conn, change.name)
            published.append(("tool.removed", change.name))
        if change.op != "-":
            tool = change.desired
            self.app.tools.register_in(
                conn, tool.name, tool.server, tool.resource, tool.action, tool.description
            )
            published.append(("tool.registered", change.name))

    def _current(self, conn: Connection) -> WorkspaceState:
        references: dict[str, str] = {}
        found = last_applied(conn)
        if found is not None:
            try:
                applied = parse_text(found[0], "the last applied file")
            except CaracalError:
                applied = None  # an older format: fall back to the default names
            if applied is not None:
                references = {
                    p.name: p.credential_env for p in applied.state.providers if p.credential_env
                }
        return read_state(conn, references, in_effect(self._config()))

    def _config(self) -> WorkspaceConfig:
        """config.yaml as it is now (this process may have written it since it opened)."""
        raw = cfg.read_raw(self.app.paths.config)
        decrypt = self.app.cipher.decrypt_value if cfg.has_encrypted(raw) else None
        return cfg.validate_raw(raw, str(self.app.paths.config), self.app.env, decrypt=decrypt)


def refuse_blocked(result: Plan) -> None:
    """Refuse a plan that asks for what cannot be done, or for suspensions not allowed."""
    if result.problems:
        more = f" (and {len(result.problems) - 1} more)" if len(result.problems) > 1 else ""
        raise ConflictError(
            f"The file asks for what cannot be done: {result.problems[0]}{more}; change the "
            "file and run `caracal plan` again. Nothing was applied."
        )
    suspend = [c.name for c in result.changes if c.needs]
    if suspend:
        raise RefusedError(
            f"The file leaves out {len(suspend)} active principal(s) ({', '.join(suspend)}); "
            "pass --allow-suspend to suspend them, or add them back to the file. Nothing was "
            "applied."
        )
