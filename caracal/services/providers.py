"""Providers: the systems agents act on, their credentials (sealed) and scope catalog."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from caracal.core.canonical import StrictJSONError, strict_loads
from caracal.core.errors import ConflictError, NotFoundError, UnavailableError, ValidationError
from caracal.core.ledger import NewEvent
from caracal.core.providers import ProviderSpec, spec_from_dict, validate_spec
from caracal.core.scopes import Catalog, parse_pattern
from caracal.home.atomic import atomic_write_text
from caracal.services import change_feed
from caracal.services.probe import ProbeResult, probe
from caracal.store import meta, provider_rows, secret_rows

if TYPE_CHECKING:
    from caracal.services.facade import Caracal

log = logging.getLogger(__name__)
EXPORT_FORMAT = "caracal-provider/1"
CATALOG_VERSION = "catalog_version"
_UNSET: Any = object()


@dataclass(frozen=True)
class ProviderView:
    spec: ProviderSpec
    credential: str  # "none" | "set" | "missing"

    def to_dict(self) -> dict[str, Any]:
        return {**self.spec.to_dict(), "credential": self.credential}


def _credential_state(conn: Connection, spec: ProviderSpec, ref: str | None) -> str:
    if spec.auth == "none":
        return "none"
    # A reference without its sealed secret: restored from a backup that carried no secrets.
    return "set" if ref and secret_rows.get(conn, ref) is not None else "missing"


def _credential_ref(name: str) -> str:
    return f"provider/{name}/credential"


# A provider file at its largest (every resource and action at their limits) is well under it.
MAX_PROVIDER_FILE_BYTES = 4 * 1024 * 1024


class ProviderService:
    def __init__(self, app: Caracal) -> None:
        self.app = app
        self._catalog: tuple[str, Catalog] | None = None

    # ---- queries ------------------------------------------------------------------------
    def all(self) -> list[ProviderView]:
        with self.app.store.read() as conn:
            return [
                ProviderView(spec, _credential_state(conn, spec, ref))
                for spec, ref in provider_rows.load_all(conn)
            ]

    def get(self, name: str) -> ProviderView:
        with self.app.store.read() as conn:
            rows = provider_rows.load_all(conn, name)
            if not rows:
                raise NotFoundError(
                    f"Provider {name!r} does not exist; see `caracal provider list`."
                )
            spec, ref = rows[0]
            return ProviderView(spec, _credential_state(conn, spec, ref))

    def catalog(self, conn: Connection | None = None, version: str | None = None) -> Catalog:
        """The scope catalog, cached until any process changes a provider (every change
        writes a new `catalog_version`, in the same transaction). `version` is that version
        when the caller read it in `conn`'s transaction already."""
        if conn is None:
            with self.app.store.read() as own:
                return self.catalog(own)
        if version is None:
            version = meta.get(conn, CATALOG_VERSION) or "0"
        if self._catalog is not None and self._catalog[0] == version:
            return self._catalog[1]
        rows = provider_rows.load_all(conn)
        catalog = Catalog({spec.name: spec.catalog() for spec, _ in rows})
        self._catalog = (version, catalog)
        return catalog

    def scopes(self, provider: str | None = None) -> list[str]:
        if provider is not None:
            self.get(provider)
            return [s for s in self.catalog().scopes() if parse_pattern(s).provider == provider]
        return self.catalog().scopes()

    # ---- changes ------------------------------------------------------------------------
    def add(self, spec: ProviderSpec, credential: str | None = None) -> ProviderView:
        validate_spec(spec, has_credential=bool(credential))
        self.app.store.write(lambda conn: self.add_in(conn, spec, credential))
        change_feed.publish(self.app, "provider.added", [spec.name])
        log.info("provider %s added (%s, auth %s)", spec.name, spec.mode, spec.auth)
        return self.get(spec.name)

    def add_in(self, conn: Connection, spec: ProviderSpec, credential: str | None) -> None:
        """Add a validated spec in the caller's transaction."""
        if provider_rows.exists(conn, spec.name):
            raise ConflictError(
                f"Provider {spec.name!r} already exists; use `caracal provider update`."
            )
        ref = self._store_credential(conn, spec.name, credential)
        provider_rows.save(conn, spec, ref)
        self._record(conn, "provider.added", spec)

    def redefine_in(self, conn: Connection, spec: ProviderSpec) -> None:
        """Replace a provider's definition in the caller's transaction, keeping its credential
        (dropping it when the new auth scheme takes none)."""
        ref = provider_rows.credential_ref(conn, spec.name)
        validate_spec(spec, has_credential=spec.auth != "none")
        if ref and spec.auth == "none":
            self.app.vault.remove(conn, ref)
            ref = None
        provider_rows.save(conn, spec, ref)
        self._record(conn, "provider.updated", spec)

    def update(
        self,
        name: str,
        *,
        credential: str | None = None,
        clear_credential: bool = False,
        **changes: Any,
    ) -> ProviderView:
        """Change the given fields; `resources`/`actions`, when given, replace the catalog."""
        if credential and clear_credential:
            raise ValidationError("Give a new credential or --clear-credential, not both.")
        changes = {k: v for k, v in changes.items() if v is not None}
        if changes.get("header_name") == "":
            changes["header_name"] = None  # an empty header name clears it

        def work(conn: Connection) -> None:
            rows = provider_rows.load_all(conn, name)
            if not rows:
                raise NotFoundError(
                    f"Provider {name!r} does not exist; see `caracal provider list`."
                )
            current, ref = rows[0]
            updated = current.with_changes(**changes)
            has_credential = bool(credential) or (bool(ref) and not clear_credential)
            validate_spec(updated, has_credential=has_credential)
            new_ref = ref
            if clear_credential and ref:
                self.app.vault.remove(conn, ref)
                new_ref = None
            if credential:
                new_ref = self._store_credential(conn, name, credential)
            provider_rows.save(conn, updated, new_ref)
            self._record(conn, "provider.updated", updated)

        self.app.store.write(work)
        change_feed.publish(self.app, "provider.updated", [name])
        log.info("provider %s updated", name)
        return self.get(name)

    def remove(self, name: str) -> None:
        self.app.store.write(lambda conn: self.remove_in(conn, name))
        change_feed.publish(self.app, "provider.removed", [name])
        log.info("provider %s removed", name)

    def remove_in(self, conn: Connection, name: str) -> None:
        """Remove a provider (and its tools) in the caller's transaction."""
        rows = provider_rows.load_all(conn, name)
        if not rows:
            raise NotFoundError(f"Provider {name!r} does not exist; see `caracal provider list`.")
        spec, ref = rows[0]
        if ref:
            self.app.vault.remove(conn, ref)
        provider_rows.remove(conn, name)
        self._record(conn, "provider.removed", spec)

    def test(self, name: str, timeout: float = 5.0) -> ProbeResult:
        """Probe the provider's health path; raise UnavailableError unless healthy."""
        if not 0 < timeout <= 300:  # also refuses NaN, which every comparison fails
            raise ValidationError(f"--timeout {timeout:g} is out of range: use 0-300 seconds.")
        view = self.get(name)
        credential = None
        if view.spec.auth != "none":
            if view.credential != "set":
                raise UnavailableError(
                    f"Provider {name!r} has no credential; set one with "
                    f"`caracal provider update {name} --credential-env VAR`."
                )
            with self.app.store.read() as conn:
                ref = provider_rows.credential_ref(conn, name)
                credential = self.app.vault.get(conn, ref or "").decode()
        result = probe(view.spec, credential, timeout)
        log.info("provider %s test: %s", name, result.detail)
        return result

    def credential(self, name: str) -> str | None:
        """The plaintext credential, for the runtime's outbound calls only."""
        with self.app.store.read() as conn:
            ref = provider_rows.credential_ref(conn, name)
            return self.app.vault.get(conn, ref).decode() if ref else None

    # ---- import / export ---------------------------------------------------------------
    def export(self, name: str, path: Path, *, overwrite: bool = False) -> None:
        data = {"format": EXPORT_FORMAT, **self.get(name).spec.to_dict()}
        atomic_write_text(path, json.dumps(data, indent=2) + "\n", mode=0o644, overwrite=overwrite)

    def import_file(
        self, path: Path, *, replace: bool = False, credential: str | None = None
    ) -> ProviderView:
        try:
            with path.open("rb") as handle:
                raw = handle.read(MAX_PROVIDER_FILE_BYTES + 1)
        except OSError as exc:
            raise NotFoundError(f"Cannot read {path}: {exc.strerror}.") from None
        if len(raw) > MAX_PROVIDER_FILE_BYTES:
            raise ValidationError(
                f"{path} is over {MAX_PROVIDER_FILE_BYTES:,} bytes: too big to be a provider file."
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError(f"{path} is not UTF-8 text.") from None
        try:
            data = strict_loads(text)  # one strict reader for every JSON from outside
            # A `\ud800` escape is valid JSON but no character: the store cannot hold it.
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(f"{path} holds a \\u escape that is not a character.") from None
        except StrictJSONError as exc:
            if "recursion" in str(exc).lower():
                raise ValidationError(
                    f"{path} is nested too deeply to be a provider file."
                ) from None
            raise ValidationError(f"{path} is not valid JSON ({exc}).") from None
        if isinstance(data, dict) and data.get("format", EXPORT_FORMAT) != EXPORT_FORMAT:
            raise ValidationError(f"{path} has unknown format {data.get('format')!r}.")
        spec = spec_from_dict(data)
        # Exports carry no secret, so an authenticated provider may arrive without one.
        validate_spec(spec, has_credential=spec.auth != "none")

        def work(conn: Connection) -> None:
            old_ref = None
            if provider_rows.exists(conn, spec.name):
                if not replace:
                    raise ConflictError(
                        f"Provider {spec.name!r} already exists; pass --replace to overwrite it."
                    )
                old_ref = provider_rows.credential_ref(conn, spec.name)
            ref = old_ref if spec.auth != "none" else None
            if credential:
                ref = self._store_credential(conn, spec.name, credential)
            elif old_ref and ref is None:
                self.app.vault.remove(conn, old_ref)
            provider_rows.save(conn, spec, ref)
            self._record(conn, "provider.imported", spec)

        self.app.store.write(work)
        change_feed.publish(self.app, "provider.imported", [spec.name])
        return self.get(spec.name)

    # ---- helpers -----------------------------------------------------------------------
    def _store_credential(self, conn: Connection, name: str, credential: str | None) -> str | None:
        if not credential:
            return None
        ref = _credential_ref(name)
        self.app.vault.put(conn, ref, "provider-credential", credential.encode())
        return ref

    def _record(self, conn: Connection, event: str, spec: ProviderSpec) -> None:
        """Provider changes are ledger events (the definition, never the credential)."""
        summary = {
            "name": spec.name,
            "mode": spec.mode,
            "base_url": spec.base_url,
            "auth": spec.auth,
            "resources": [r.resource_id for r in spec.resources],
            "actions": [f"{a.resource_id}:{a.action_id}" for a in spec.actions],
            "definition_sha256": spec.definition_sha256(),
        }
        meta.put(conn, CATALOG_VERSION, uuid.uuid4().hex)
        self.app.ledger.record(conn, NewEvent(event, summary))
