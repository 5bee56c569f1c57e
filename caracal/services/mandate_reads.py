"""Reading mandates: one mandate (with the status validation would give it), listings and
counts, what may be issued to a subject, the delegation graph around a mandate."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from caracal.core import jws
from caracal.core.errors import NotFoundError, ValidationError
from caracal.core.mandates import MandateClaims
from caracal.core.scopes import any_pattern_matches, scope_kind
from caracal.services.authority_state import StoreAuthorityState
from caracal.services.principals import resolve
from caracal.store import mandate_rows, policy_rows

if TYPE_CHECKING:
    from caracal.services.facade import Caracal

# Decided by time alone: status_of says so already (without the clock leeway).
_TIME_CODES = frozenset({"MANDATE_EXPIRED", "MANDATE_NOT_YET_VALID"})
STATUSES = ("active", "pending", "blocked", "expired", "revoked")


def resolve_mandate_id(conn: Connection, ref: str) -> str:
    """An id, or an unambiguous prefix of one (at least 8 characters)."""
    if mandate_rows.state(conn, ref) is not None:
        return ref
    if len(ref) >= 8:
        found = mandate_rows.find_by_prefix(conn, ref)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise ValidationError(f"Mandate id prefix {ref!r} is ambiguous; give more of it.")
    raise NotFoundError(f"Mandate {ref!r} does not exist; see `caracal mandate list`.")


class MandateReads:
    """The reading half of `MandateService`."""

    app: Caracal

    def write_token(self, mandate_id: str) -> Path:
        """Write a mandate's token to `<workspace>/tokens/<id>.jwt`, readable only by its owner
        (0600, written atomically): for terminals that do not pass a copy to the clipboard."""
        from caracal.home.atomic import atomic_write_text

        row = self.get(mandate_id)
        path = self.app.paths.root / "tokens" / f"{row['id']}.jwt"
        atomic_write_text(path, row["token"] + "\n", mode=0o600)
        return path

    def get(self, mandate_id: str) -> dict[str, Any]:
        now = int(self.app.clock())
        with self.app.store.read() as conn:
            row = mandate_rows.get(conn, resolve_mandate_id(conn, mandate_id))
            assert row is not None
            row["status"] = status_of(row, now)
            row["status_reason"] = None
            if row["status"] in ("active", "pending"):
                # The very checks validation makes (keys, principals, every ancestor).
                state = StoreAuthorityState(conn, self.app.workspace_id, self.app.signing)
                live = self.app.validator.check_live(row["token"], state, now)
                if not live.allowed and live.reason_code not in _TIME_CODES:
                    row["status"], row["status_reason"] = "blocked", live.reason_code
        try:
            claims = MandateClaims.from_claims(jws.decode(row["token"]).claims)
            row["grants"] = [list(pair) for pair in sorted(claims.granted_pairs())]
        except jws.TokenError:
            row["grants"] = []
        return row

    def listing(
        self,
        *,
        subject_ref: str | None = None,
        status: str | None = None,
        search: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        if status is not None and status not in STATUSES:
            raise ValidationError(
                f"Unknown status filter {status!r}: use one of {', '.join(STATUSES)}."
            )
        now = int(self.app.clock())
        with self.app.store.read() as conn:
            subject_id = resolve(conn, subject_ref).id if subject_ref else None
            rows = mandate_rows.listing(
                conn,
                subject_id=subject_id,
                status=status,
                now=now,
                search=search,
                limit=limit,
                offset=offset,
            )
        for row in rows:
            row["status"] = status_of(row, now)
        return rows

    def prepare_search(self) -> None:
        """Read what a search matches against ahead of the first keystroke (see
        store.mandate_search); later searches read only what is new."""
        from caracal.store import mandate_search

        with self.app.store.read() as conn:
            mandate_search.scope_lists(conn)

    def count(
        self,
        *,
        subject_ref: str | None = None,
        status: str | None = None,
        search: str | None = None,
    ) -> int:
        now = int(self.app.clock())
        with self.app.store.read() as conn:
            subject_id = resolve(conn, subject_ref).id if subject_ref else None
            return mandate_rows.count(
                conn, status=status, now=now, subject_id=subject_id, search=search
            )

    def issue_bounds(self, subject_ref: str) -> dict[str, Any]:
        """What may be issued to a subject: its active policy and the catalog scopes inside it
        (what an issue form offers; the facade still checks everything on issue)."""
        with self.app.store.read() as conn:
            subject = resolve(conn, subject_ref)
            policy = policy_rows.active_for(conn, subject.id)
            catalog = self.app.providers.catalog(conn)
        scopes = [s for s in catalog.scopes() if "*" not in s]
        if policy is None:
            return {
                "subject": subject,
                "policy": None,
                "resources": [],
                "actions": [],
                "pairs": [],
            }
        resources = [
            s
            for s in scopes
            if scope_kind(s) == "resource" and any_pattern_matches(policy.resources, s)
        ]
        actions = [
            s
            for s in scopes
            if scope_kind(s) == "action" and any_pattern_matches(policy.actions, s)
        ]
        return {
            "subject": subject,
            "policy": policy,
            "resources": resources,
            "actions": actions,
            # The declared pairs inside the policy (grants are pairs, not the cross product).
            "pairs": [p for p in catalog.pairs() if p[0] in resources and p[1] in actions],
        }

    def graph(self, mandate_id: str) -> dict[str, Any]:
        """Ancestors (root first) and the subtree below the mandate, each with its status."""
        now = int(self.app.clock())
        with self.app.store.read() as conn:
            ident = resolve_mandate_id(conn, mandate_id)
            ancestors = list(reversed(mandate_rows.ancestors(conn, ident)))
            subtree = mandate_rows.subtree(conn, ident)
            blocked = mandate_rows.blocked_among(conn, [r["id"] for r in ancestors + subtree], now)
        for row in ancestors + subtree:
            row["blocked"] = row["id"] in blocked
            row["status"] = status_of(row, now)
        return {"ancestors": ancestors, "mandate": subtree[0], "descendants": _nest(subtree)}


def status_of(row: dict[str, Any], now: int) -> str:
    """revoked, expired, blocked (validation denies it: a revoked signing key, a principal
    that is not active, or such an ancestor), pending (not valid yet) or active."""
    if row.get("revoked_at") is not None:
        return "revoked"
    if row["expires_at"] <= now:
        return "expired"
    if row.get("blocked"):
        return "blocked"
    if row.get("not_before", 0) > now:
        return "pending"
    return "active"


def _nest(subtree: list[dict[str, Any]]) -> list[dict[str, Any]]:
    children: dict[str, list[dict[str, Any]]] = {}
    for row in subtree[1:]:
        children.setdefault(row["parent_id"], []).append(row)

    def build(node_id: str) -> list[dict[str, Any]]:
        return [{**row, "children": build(row["id"])} for row in children.get(node_id, [])]

    return build(subtree[0]["id"])
