"""Add a provider, or edit one: connection, auth, credential, health path and catalog.

Every change re-runs the same `validate_spec` the facade runs on save, so the one-line error
shows before saving. The credential goes straight to the facade (and so to the vault); it is
never read back or shown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.widgets import Checkbox, Input, Select, TextArea

from caracal.flow.modals.form import FormModal
from caracal.flow.modals.provider_catalog import (
    ACTIONS_LABEL,
    RESOURCES_LABEL,
    catalog_text,
    flow_wording,
    parse_catalog,
)

if TYPE_CHECKING:
    from caracal.core.providers import ProviderSpec
    from caracal.services.providers import ProviderView


class ProviderFormModal(FormModal["ProviderView"]):
    """The fields and checks add and edit share; `current` is None when adding."""

    DEFAULT_CSS = """
    ProviderFormModal TextArea { height: 5; }
    """

    def __init__(self, current: ProviderView | None = None) -> None:
        super().__init__()
        self.current = current

    def compose_fields(self) -> ComposeResult:
        from caracal.core.providers import AUTH_SCHEMES

        spec = self.current.spec if self.current else None
        resources, actions = catalog_text(spec) if spec else ("", "")
        yield self.field("Name (lowercase letters, digits, '.', '-' or '_')")
        yield Input(spec.name if spec else "", id="name", disabled=spec is not None)
        yield self.field("Base URL")
        yield Input(
            spec.base_url if spec else "", id="base-url", placeholder="https://api.example.com"
        )
        yield self.field("Service type")
        yield Input(spec.service_type if spec else "http", id="service-type")
        yield self.field("Auth scheme")
        yield Select(
            [(scheme, scheme) for scheme in AUTH_SCHEMES],
            value=spec.auth if spec else "none",
            allow_blank=False,
            id="auth",
        )
        yield self.field(
            "Header name (schemes 'header' and 'api-key'; api-key defaults to X-API-Key)"
        )
        yield Input((spec.header_name or "") if spec else "", id="header-name")
        yield self.field("Credential (sealed in the vault, never shown again)")
        yield Input(
            "",
            password=True,
            id="credential",
            placeholder="leave empty to keep the current one" if spec else "",
        )
        if self.current is not None and self.current.credential != "none":
            yield Checkbox(
                f"Clear the stored credential (now: {self.current.credential})",
                id="clear-credential",
            )
        yield self.field("Health path (what a connection test GETs)")
        yield Input(spec.health_path if spec else "/", id="health-path")
        yield self.field(RESOURCES_LABEL)
        yield TextArea(resources, id="resources")
        yield self.field(ACTIONS_LABEL)
        yield TextArea(actions, id="actions")

    # ---- live validation ------------------------------------------------------------------
    def on_input_changed(self, event: Input.Changed) -> None:
        super().on_input_changed(event)
        self._recheck()

    def on_select_changed(self, _: Select.Changed) -> None:
        self._recheck()

    def on_text_area_changed(self, _: TextArea.Changed) -> None:
        self.flow.unsaved = True
        self._recheck()

    def on_checkbox_changed(self, _: Checkbox.Changed) -> None:
        self._recheck()

    def _recheck(self) -> None:
        if not self.is_mounted:
            return
        # A blank new form is not an error yet: wait until the two required fields are filled.
        if self.current is None and not (self.value("name") and self.value("base-url")):
            self.show_error("")
            return
        try:
            self._checked_spec()
        except ValueError as exc:
            self.show_error(str(exc))
        else:
            self.show_error("")

    def show_error(self, message: str) -> None:
        super().show_error(flow_wording(message))

    # ---- reading the fields ---------------------------------------------------------------
    @property
    def auth(self) -> str:
        value = self.query_one("#auth", Select).value
        return value if isinstance(value, str) else "none"

    @property
    def clear_credential(self) -> bool:
        boxes = self.query("#clear-credential").results(Checkbox)
        return any(box.value for box in boxes)

    def _checked_spec(self) -> ProviderSpec:
        """The spec as the facade will store it, validated; ValueError with the message."""
        from caracal.core.errors import ValidationError
        from caracal.core.providers import ProviderSpec, validate_spec

        credential = self.value("credential")
        header_name = self.value("header-name") or None
        try:
            resources, actions = parse_catalog(
                self.query_one("#resources", TextArea).text,
                self.query_one("#actions", TextArea).text,
            )
            fields: dict[str, Any] = {
                "base_url": self.value("base-url"),
                "service_type": self.value("service-type") or "http",
                "auth": self.auth,
                "header_name": header_name,
                "health_path": self.value("health-path") or "/",
                "resources": resources,
                "actions": actions,
            }
            if self.current is None:
                spec = ProviderSpec(name=self.value("name"), **fields)
                has_credential = bool(credential)
            else:
                if credential and self.clear_credential:
                    raise ValueError("Enter a new credential or clear the stored one, not both.")
                if header_name is None and self.current.spec.header_name:
                    # The facade treats an empty field as "unchanged", so it cannot clear one.
                    raise ValueError(
                        "A header name cannot be removed here; remove and re-add the provider."
                    )
                spec = self.current.spec.with_changes(**fields)
                stored = self.current.credential != "none" and not self.clear_credential
                if stored and self.auth == "none":
                    raise ValueError(
                        "Auth scheme 'none' uses no credential: tick 'Clear the stored "
                        "credential' as well."
                    )
                has_credential = bool(credential) or stored
            return validate_spec(spec, has_credential=has_credential)
        except ValidationError as exc:
            raise ValueError(flow_wording(exc.message)) from None

    def prepare(self) -> Callable[[], ProviderView]:
        raise NotImplementedError


class AddProviderModal(ProviderFormModal):
    TITLE = "Add a provider"
    SUBMIT = "Add"

    def prepare(self) -> Callable[[], ProviderView]:
        spec = self._checked_spec()
        credential = self.value("credential") or None
        caracal = self.flow.context.caracal
        return lambda: caracal.providers.add(spec, credential)


class EditProviderModal(ProviderFormModal):
    TITLE = "Edit a provider"

    def __init__(self, current: ProviderView) -> None:
        super().__init__(current)

    def prepare(self) -> Callable[[], ProviderView]:
        spec = self._checked_spec()
        credential = self.value("credential") or None
        clear = self.clear_credential
        caracal = self.flow.context.caracal
        return lambda: caracal.providers.update(
            spec.name,
            credential=credential,
            clear_credential=clear,
            base_url=spec.base_url,
            service_type=spec.service_type,
            auth=spec.auth,
            header_name=spec.header_name,
            health_path=spec.health_path,
            resources=spec.resources,
            actions=spec.actions,
        )
