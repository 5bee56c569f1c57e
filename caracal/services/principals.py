"""Principals: register, inspect, rotate keys, suspend, activate, revoke."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from caracal.core.errors import ConflictError, NotFoundError, ValidationError
from caracal.core.keys import pem_sha256
from caracal.core.ledger import NewEvent
from caracal.core.mandates import Principal
from caracal.core.names import check_principal_name
from caracal.core.principals import KINDS
from caracal.services import change_feed
from caracal.services.ids import new_id
from caracal.store import ledger_rows, mandate_rows, principal_rows

if TYPE_CHECKING:
    from caracal.services.facade import Caracal

log = logging.getLogger(__name__)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def resolve(conn: Connection, ref: str) -> Principal:
    found = principal_rows.find(conn, ref)
    if found is None:
        raise NotFoundError(f"Principal {ref!r} does not exist; see `caracal principal list`.")
    return found


@dataclass(frozen=True)
class KeyRotation:
    principal: Principal
    new_kid: str
    old_kids: list[str]
    revoked_old: bool


class PrincipalService:
    def __init__(self, app: Caracal) -> None:
        self.app = app

    def register(self, kind: str, name: str, email: str | None = None) -> Principal:
        self.check_registration(kind, name, email)
        principal = Principal(new_id("pr"), name, kind, "active")
        self.app.store.write(lambda conn: self.register_in(conn, principal, email))
        log.info("principal %s (%s) registered as %s", name, kind, principal.id)
        return principal

    @staticmethod
    def check_registration(kind: str, name: str, email: str | None) -> None:
        if kind not in KINDS:
            raise ValidationError(
                f"Unknown principal kind {kind!r}: use one of {', '.join(KINDS)}."
            )
        check_principal_name(name)
        if email is not None and not _EMAIL.fullmatch(email):
            raise ValidationError(f"Invalid email address {email!r}.")

    def register_in(self, conn: Connection, principal: Principal, email: str | None) -> None:
        """Register a checked principal (and its first key) in the caller's transaction."""
        if principal_rows.name_taken(conn, principal.name):
            raise ConflictError(f"A principal named {principal.name!r} already exists.")
        principal_rows.insert(conn, principal, email)
        pair = self.app.signing.create(conn, principal.id)
        self.app.ledger.record(
            conn,
            NewEvent(
                "principal.registered",
                {
                    "name": principal.name,
                    "kind": principal.kind,
                    "kid": pair.kid,
                    "public_key_sha256": pem_sha256(pair.public_pem),
                },
                principal_id=principal.id,
            ),
        )

    def get(self, ref: str) -> Principal:
        with self.app.store.read() as conn:
            return resolve(conn, ref)

    def all(self) -> list[dict[str, Any]]:
        with self.app.store.read() as conn:
            return principal_rows.all_rows(conn)

    def detail(self, ref: str) -> dict[str, Any]:
        now = int(self.app.clock())
        with self.app.store.read() as conn:
            principal = resolve(conn, ref)
            data = principal_rows.detail(conn, principal.id)
            data["keys"] = principal_rows.keys_of(conn, principal.id)
            counts = {
                "held_active": dict(status="active", subject_id=principal.id),
                "held_total": dict(status=None, subject_id=principal.id),
                "issued_active": dict(status="active", issuer_id=principal.id),
                "issued_total": dict(status=None, issuer_id=principal.id),
            }
            data["mandates"] = {
                name: mandate_rows.count(conn, now=now, **filters)  # type: ignore[arg-type]
                for name, filters in counts.items()
            }
        return data

    def check_rotation(self, ref: str) -> Principal:
        """The principal, if its keys may be rotated (ConflictError otherwise)."""
        principal = self.get(ref)
        if principal.status == "revoked":
            raise ConflictError(f"{principal.name} is revoked; its keys cannot be rotated.")
        return principal

    def signed_by_keys(self, ref: str) -> int:
        """How many mandates valid now or later were signed by the principal's keys (what a
        rotation with --revoke-old stops, before what was delegated from them)."""
        now = int(self.app.clock())
        with self.app.store.read() as conn:
            principal = resolve(conn, ref)
            return mandate_rows.count(conn, status="active", now=now, issuer_id=principal.id) + (
                mandate_rows.count(conn, status="pending", now=now, issuer_id=principal.id)
            )

    def rotate_key(self, ref: str, *, revoke_old: bool = False) -> KeyRotation:
        def work(conn: Connection) -> KeyRotation:
            ledger_rows.lock_head(conn)  # authority changes take it first: see lock_head
            principal = resolve(conn, ref)
            if principal.status == "revoked":
                raise ConflictError(f"{principal.name} is revoked; its keys cannot be rotated.")
            old = principal_rows.retire_keys(conn, principal.id, revoke=revoke_old)
            pair = self.app.signing.create(conn, principal.id)
            self.app.ledger.record(
                conn,
                NewEvent(
                    "principal.key_rotated",
                    {
                        "new_kid": pair.kid,
                        "new_key_sha256": pem_sha256(pair.public_pem),
                        "old_kids": old,
                        "old_keys_revoked": revoke_old,
                    },
                    principal_id=principal.id,
                ),
            )
            return KeyRotation(principal, pair.kid, old, revoke_old)

        rotation = self.app.store.write(work)
        self.app.signing.forget(rotation.old_kids)
        if revoke_old:
            self.app.validator.forget()
            change_feed.publish(self.app, "key.revoked", rotation.old_kids)
        log.info("principal %s key rotated to %s", rotation.principal.name, rotation.new_kid)
        return rotation

    def suspend(self, ref: str) -> Principal:
        return self._set_status(ref, "suspended")

    def activate(self, ref: str) -> Principal:
        return self._set_status(ref, "active")

    def revoke(self, ref: str) -> Principal:
        return self._set_status(ref, "revoked")

    def check_status_change(self, ref: str, status: str) -> Principal:
        """The principal, if it may become `status` now (ConflictError otherwise): for a front
        end that asks before changing it."""
        with self.app.store.read() as conn:
            principal = resolve(conn, ref)
        _check_transition(principal, status)
        return principal

    def set_status_in(self, conn: Connection, ref: str, status: str) -> Principal:
        """Change a principal's status in the caller's transaction (which has taken the
        ledger head first: see lock_head)."""
        principal = resolve(conn, ref)
        _check_transition(principal, status)
        principal_rows.set_status(conn, principal.id, status)
        affected = mandate_rows.held_or_issued_by(conn, principal.id)
        self.app.ledger.record(
            conn,
            NewEvent(
                f"principal.{status if status != 'active' else 'activated'}",
                {"from": principal.status, "to": status, "mandates_affected": len(affected)},
                principal_id=principal.id,
            ),
        )
        return Principal(principal.id, principal.name, principal.kind, status)

    def _set_status(self, ref: str, status: str) -> Principal:
        def work(conn: Connection) -> Principal:
            ledger_rows.lock_head(conn)  # authority changes take it first: see lock_head
            return self.set_status_in(conn, ref, status)

        updated = self.app.store.write(work)
        change_feed.publish(self.app, f"principal.{status}", [updated.id])
        log.info("principal %s is now %s", updated.name, status)
        return updated


_ALLOWED_FROM = {
    "suspended": {"active"},
    "active": {"suspended"},
    "revoked": {"active", "suspended"},
}


def _check_transition(principal: Principal, status: str) -> None:
    if principal.status == status:
        raise ConflictError(f"{principal.name} is already {status}.")
    if principal.status not in _ALLOWED_FROM[status]:
        raise ConflictError(f"{principal.name} is {principal.status}; it cannot become {status}.")
