"""Edit a provider's catalog: its resources and the actions on each, one per line.

Also home to the line format the add/edit form shares: resources as `ID[=DESCRIPTION]`,
actions as `RESOURCE:ACTION[:METHOD[:PATH_PREFIX]]`, exactly as the CLI options take them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.widgets import Static, TextArea

from caracal.flow.modals.form import FormModal

if TYPE_CHECKING:
    from caracal.core.providers import ProviderAction, ProviderResource, ProviderSpec
    from caracal.services.providers import ProviderView

RESOURCES_LABEL = "Resources, one per line: ID[=DESCRIPTION]  (none at all = passthrough)"
ACTIONS_LABEL = "Actions, one per line: RESOURCE:ACTION[:METHOD[:PATH_PREFIX]]"

# validate_spec speaks to the command line; in a form the same rule reads better in form terms.
_FLOW_WORDING = (
    ("pass --credential-env VAR or --credential-stdin", "enter one"),
    ("; set --auth as well", "; choose an auth scheme as well"),
    ("needs --header-name (e.g. X-Token)", "needs a header name (e.g. X-Token)"),
    ("--header-name only applies", "A header name only applies"),
    ("--clear-credential", "clearing it"),
    ("add it with --resource first", "add it to the resources first"),
    ("add one with --action ", "add an action line "),
)


def flow_wording(message: str) -> str:
    for cli, flow in _FLOW_WORDING:
        message = message.replace(cli, flow)
    return message


def catalog_text(spec: ProviderSpec) -> tuple[str, str]:
    """The catalog as the editable lines (resources, actions)."""
    resources = "\n".join(
        r.resource_id + (f"={r.description}" if r.description else "") for r in spec.resources
    )
    actions = "\n".join(
        f"{a.resource_id}:{a.action_id}:{a.method}:{a.path_prefix}" for a in spec.actions
    )
    return resources, actions


def parse_catalog(
    resources_text: str, actions_text: str
) -> tuple[tuple[ProviderResource, ...], tuple[ProviderAction, ...]]:
    """Blank lines are skipped; a malformed action line raises ValidationError."""
    from caracal.core.providers import parse_action_option, parse_resource_option

    resources = tuple(
        parse_resource_option(line) for line in resources_text.splitlines() if line.strip()
    )
    actions = tuple(
        parse_action_option(line.strip()) for line in actions_text.splitlines() if line.strip()
    )
    return resources, actions


class ProviderCatalogModal(FormModal["ProviderView"]):
    TITLE = "Edit the catalog"
    DEFAULT_CSS = """
    ProviderCatalogModal TextArea { height: 8; }
    """

    def __init__(self, current: ProviderView) -> None:
        super().__init__()
        self.current = current

    def compose_fields(self) -> ComposeResult:
        spec = self.current.spec
        resources, actions = catalog_text(spec)
        yield Static(
            f"Provider {spec.name} ({spec.mode}). Saving replaces the whole catalog; "
            "mandates keep the scopes they were issued with.",
            classes="hint",
            markup=False,
        )
        yield self.field(RESOURCES_LABEL)
        yield TextArea(resources, id="resources")
        yield self.field(ACTIONS_LABEL)
        yield TextArea(actions, id="actions")

    def on_mount(self) -> None:
        # Editing a catalog is mostly appending: start at the end of each list.
        for area in self.query(TextArea):
            area.move_cursor(area.document.end)

    def on_text_area_changed(self, _: TextArea.Changed) -> None:
        self.flow.unsaved = True
        try:
            self._checked_catalog()
        except ValueError as exc:
            self.show_error(str(exc))
        else:
            self.show_error("")

    def _checked_catalog(self) -> tuple[tuple[ProviderResource, ...], tuple[ProviderAction, ...]]:
        from caracal.core.errors import ValidationError
        from caracal.core.providers import validate_spec

        try:
            resources, actions = parse_catalog(
                self.query_one("#resources", TextArea).text,
                self.query_one("#actions", TextArea).text,
            )
            validate_spec(
                self.current.spec.with_changes(resources=resources, actions=actions),
                has_credential=self.current.credential != "none",
            )
        except ValidationError as exc:
            raise ValueError(flow_wording(exc.message)) from None
        return resources, actions

    def show_error(self, message: str) -> None:
        super().show_error(flow_wording(message))

    def prepare(self) -> Callable[[], Any]:
        resources, actions = self._checked_catalog()
        caracal, name = self.flow.context.caracal, self.current.spec.name
        return lambda: caracal.providers.update(name, resources=resources, actions=actions)
