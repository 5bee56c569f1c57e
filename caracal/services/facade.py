"""`Caracal(workspace)`: the one facade behind Flow, the CLI and the runtime service."""

from __future__ import annotations

import getpass
import logging
import os
import time
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from caracal.home import config as cfg
from caracal.home.paths import HomePaths, WorkspacePaths
from caracal.services.logs import attach_workspace_log
from caracal.services.workspaces import WorkspaceManager
from caracal.store.engine import Store, StoreLocation, open_store, resolve_location

if TYPE_CHECKING:
    from caracal.core.tree_head import TreeHead
    from caracal.core.validation import Validator
    from caracal.services.backup.service import BackupService
    from caracal.services.config_service import ConfigService
    from caracal.services.declarative.service import DeclarativeService
    from caracal.services.gateway_calls import GatewayCallService
    from caracal.services.ledger import LedgerService
    from caracal.services.ledger_head import LedgerHeads
    from caracal.services.log_tail import LogLine
    from caracal.services.mandates import MandateService
    from caracal.services.overview import OverviewService
    from caracal.services.policies import PolicyService
    from caracal.services.principals import PrincipalService
    from caracal.services.providers import ProviderService
    from caracal.services.pulse import PulseService
    from caracal.services.secrets import SecretVault
    from caracal.services.signing import SigningKeys
    from caracal.services.tools import ToolService
    from caracal.services.validation import ValidationService
    from caracal.vault.cipher import SecretCipher

log = logging.getLogger(__name__)


class Caracal:
    """One open workspace. Cheap to construct; the store and master key open on first use."""

    def __init__(
        self,
        manager: WorkspaceManager,
        name: str,
        *,
        actor: str | None = None,
        clock: Callable[[], float] = time.time,
        check_ledger: bool = True,
        migrate: bool = True,
    ) -> None:
        self.manager = manager
        # Whether opening the store applies pending migrations (off only for a reader that
        # must write nothing: it asks `store_is_current` instead).
        self.migrate = migrate
        # Whether opening the store checks its ledger head against the copies kept outside it
        # (off only for the commands that report or accept what that check finds).
        self.check_ledger = check_ledger
        self.name = name
        self.actor = actor or _default_actor()
        self.clock = clock
        self.paths: WorkspacePaths = manager.home.workspace(name)
        self.env = manager.env
        self._store: Store | None = None
        self._raw = cfg.read_raw(self.paths.config)
        # Plain validation first (no decryption), so a broken file fails before any key lookup.
        self.config = cfg.validate_raw(self._raw, str(self.paths.config), self.env)
        if cfg.has_encrypted(self._raw):
            self.config = cfg.validate_raw(
                self._raw, str(self.paths.config), self.env, decrypt=self.cipher.decrypt_value
            )
        attach_workspace_log(self.paths.log_file, self.config.logging.level)

    @classmethod
    def open(
        cls,
        workspace: str | None = None,
        *,
        home: HomePaths | None = None,
        env: dict[str, str] | None = None,
        actor: str | None = None,
        clock: Callable[[], float] = time.time,
        check_ledger: bool = True,
    ) -> Caracal:
        manager = WorkspaceManager(home, dict(os.environ if env is None else env))
        return cls(
            manager, manager.resolve(workspace), actor=actor, clock=clock, check_ledger=check_ledger
        )

    # ---- adapters, opened lazily ---------------------------------------------------------
    @property
    def location(self) -> StoreLocation:
        return resolve_location(self.config.store.url, self.config.store.pg_schema, self.paths.root)

    @property
    def store(self) -> Store:
        if self._store is None:
            store = open_store(
                self.location,
                pool_size=self.config.store.pool_size,
                busy_timeout_ms=self.config.store.busy_timeout_ms,
                migrate=self.migrate,
            )
            self._store = store
            if self.check_ledger:
                try:
                    self.check_ledger_head()
                except BaseException:
                    self._store = None
                    store.dispose()
                    raise
        return self._store

    def store_is_current(self) -> bool:
        """Whether the store is at the schema version this code writes (always, once opened
        with `migrate`)."""
        from caracal.store.migrations import LATEST, current_version

        with self.store.read() as conn:
            return current_version(conn) == LATEST

    def check_ledger_head(self) -> TreeHead:
        """The store's signed head, checked against its newest event and every copy kept
        outside the store (raises RollbackError or IntegrityError). The first open after the
        upgrade that introduced signed heads signs the head it finds."""
        heads = self.ledger_heads
        recorded = heads.recorded()  # before the snapshot: see LedgerHeads.recorded
        with self.store.read(snapshot=True) as conn:  # the head and the events, one state
            head = heads.check_at_open(conn, recorded)
        if head is None:
            ts_us = int(self.clock() * 1_000_000)
            head = self.store.write(lambda conn: heads.sign_stored(conn, ts_us))
            heads.committed(head)
            log.info("signed the ledger head at event %d after the upgrade", head.size)
        return head

    @cached_property
    def cipher(self) -> SecretCipher:
        from caracal.services.staging import ACCOUNT_FILE
        from caracal.vault.cipher import SecretCipher
        from caracal.vault.master_key import resolve_master_key

        account = (self.paths.keys / ACCOUNT_FILE).read_text().strip()
        return SecretCipher(resolve_master_key(self.paths.keys, account, create=False).key)

    @cached_property
    def vault(self) -> SecretVault:
        from caracal.services.secrets import SecretVault

        return SecretVault(self.cipher)

    @cached_property
    def workspace_id(self) -> str:
        from caracal.store import meta

        with self.store.read() as conn:
            value = meta.get(conn, "workspace_id")
        if not value:
            from caracal.core.errors import IntegrityError

            raise IntegrityError(
                "The workspace store has no workspace id; restore it from a backup."
            )
        return value

    @cached_property
    def ledger_heads(self) -> LedgerHeads:
        from caracal.services.ledger_head import LedgerHeads, witnesses_from

        return LedgerHeads(
            workspace_id=lambda: self.workspace_id,
            keys_dir=self.paths.keys,
            vault=lambda: self.vault,
            witnesses=lambda: witnesses_from(
                self.config.ledger.witnesses, self.paths.root, lambda: self.workspace_id
            ),
        )

    @cached_property
    def signing(self) -> SigningKeys:
        from caracal.services.signing import SigningKeys

        return SigningKeys(self)

    @cached_property
    def validator(self) -> Validator:
        from caracal.core.validation import Validator

        return Validator(
            leeway_seconds=self.config.validation.clock_leeway_seconds,
            cache_size=self.config.validation.cache_size,
        )

    # ---- services -----------------------------------------------------------------------
    def log_tail(self, **options: Any) -> list[LogLine]:
        """The end of this workspace's log (see `log_tail.tail` for the options)."""
        from caracal.services.log_tail import tail

        return tail(self.paths.log_file, **options)

    @cached_property
    def overview(self) -> OverviewService:
        from caracal.services.overview import OverviewService

        return OverviewService(self)

    @cached_property
    def pulse(self) -> PulseService:
        """The dashboard's live figures and its remembered, incremental ledger check."""
        from caracal.services.pulse import PulseService

        return PulseService(self)

    @cached_property
    def backups(self) -> BackupService:
        from caracal.services.backup.service import BackupService

        return BackupService(self)

    @cached_property
    def ledger(self) -> LedgerService:
        from caracal.services.ledger import LedgerService

        return LedgerService(self)

    @cached_property
    def principals(self) -> PrincipalService:
        from caracal.services.principals import PrincipalService

        return PrincipalService(self)

    @cached_property
    def policies(self) -> PolicyService:
        from caracal.services.policies import PolicyService

        return PolicyService(self)

    @cached_property
    def mandates(self) -> MandateService:
        from caracal.services.mandates import MandateService

        return MandateService(self)

    @cached_property
    def validation(self) -> ValidationService:
        from caracal.services.validation import ValidationService

        return ValidationService(self)

    @cached_property
    def providers(self) -> ProviderService:
        from caracal.services.providers import ProviderService

        return ProviderService(self)

    @cached_property
    def gateway_calls(self) -> GatewayCallService:
        from caracal.services.gateway_calls import GatewayCallService

        return GatewayCallService(self)

    @cached_property
    def tools(self) -> ToolService:
        from caracal.services.tools import ToolService

        return ToolService(self)

    @cached_property
    def declarative(self) -> DeclarativeService:
        from caracal.services.declarative.service import DeclarativeService

        return DeclarativeService(self)

    @cached_property
    def settings(self) -> ConfigService:
        from caracal.services.config_service import ConfigService

        return ConfigService(self)

    # ---- lifecycle ----------------------------------------------------------------------
    def close(self) -> None:
        if "ledger_heads" in self.__dict__:
            self.ledger_heads.close()  # the newest head reaches the head file and witnesses
        if self._store is not None:
            self._store.dispose()
            self._store = None

    def __enter__(self) -> Caracal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _default_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"local:{user}"
