"""First run: a workspace (new, or imported from a backup), the first human principal, and
optionally the first provider. Each step is done through the facade as it is confirmed and
recorded in the workspace's Flow state, so quitting halfway resumes where it stopped."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, ContentSwitcher, Input, Label, Static

from caracal.flow.tasks import run_in_background
from caracal.flow.widgets.footer import FittingFooter
from caracal.flow.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from caracal.flow.app import FlowApp

STEPS = ("workspace", "principal", "provider")


class OnboardingScreen(Screen[None]):
    BINDINGS = [Binding("escape", "app.quit_flow", "Quit", id="onboarding-quit")]
    DEFAULT_CSS = """
    OnboardingScreen VerticalScroll { padding: 1 4; }
    OnboardingScreen .step { height: auto; }
    OnboardingScreen Input { margin-bottom: 1; }
    OnboardingScreen .hint { color: $text-muted; margin-bottom: 1; }
    OnboardingScreen .error { color: $error; height: auto; }
    OnboardingScreen Horizontal { height: auto; margin-top: 1; }
    OnboardingScreen Button { margin-right: 2; }
    """

    def __init__(self, resume: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.resume = resume or {}

    @property
    def flow(self) -> FlowApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        bar = StatusBar(id="status")
        bar.area = "Welcome"
        yield bar
        with VerticalScroll(), ContentSwitcher(initial="workspace", id="steps"):
            with Vertical(id="workspace", classes="step"):
                yield Label("[b]Step 1 of 3 — a workspace[/b]")
                yield Static(
                    "A workspace holds providers, principals, policies, mandates and the ledger. "
                    "Create one, or import one from a backup archive.",
                    classes="hint",
                )
                yield Input(placeholder="name, e.g. demo", id="workspace-name")
                yield Input(
                    placeholder="optional: path to a backup archive to import", id="archive-path"
                )
                yield Input(
                    placeholder="lock key (only for a locked archive)",
                    password=True,
                    id="archive-key",
                )
                yield Static("", id="workspace-error", classes="error")
                with Horizontal():
                    yield Button("Create workspace", id="create-workspace", variant="primary")
            with Vertical(id="principal", classes="step"):
                yield Label("[b]Step 2 of 3 — you[/b]")
                yield Static(
                    "Register the first human principal: the person who grants authority.",
                    classes="hint",
                )
                yield Input(placeholder="name, e.g. alice", id="principal-name")
                yield Input(placeholder="email (optional)", id="principal-email")
                yield Static("", id="principal-error", classes="error")
                with Horizontal():
                    yield Button("Register", id="register-principal", variant="primary")
            with Vertical(id="provider", classes="step"):
                yield Label("[b]Step 3 of 3 — a provider (optional)[/b]")
                yield Static(
                    "A provider is a system agents act on. Add one now with a resource and an "
                    "action, or skip: the Providers screen does this too.",
                    classes="hint",
                )
                yield Input(placeholder="name, e.g. github", id="provider-name")
                yield Input(placeholder="base URL, e.g. https://api.github.com", id="provider-url")
                yield Input(placeholder="resource id, e.g. repos", id="provider-resource")
                yield Input(placeholder="action id, e.g. read", id="provider-action")
                yield Static("", id="provider-error", classes="error")
                with Horizontal():
                    yield Button("Add provider", id="add-provider", variant="primary")
                    yield Button("Skip", id="skip-provider")
        yield FittingFooter()

    def on_mount(self) -> None:
        self.flow.paint_status(self.query_one(StatusBar))
        if self.flow.context.has_workspace:
            run_in_background(
                self, self._resume_step, done=self._show, description="onboarding step"
            )
        else:
            self._show("workspace")

    def _resume_step(self) -> str:
        caracal = self.flow.context.caracal
        humans = [p for p in caracal.principals.all() if p["kind"] == "human"]
        if not humans:
            return "principal"
        # A workspace set up elsewhere (the CLI, the container stack) needs no onboarding.
        return "done" if caracal.providers.all() else "provider"

    def _show(self, step: str) -> None:
        if step == "done":
            self._finish()
            return
        self.query_one("#steps", ContentSwitcher).current = step
        first = {
            "workspace": "#workspace-name",
            "principal": "#principal-name",
            "provider": "#provider-name",
        }[step]
        self.query_one(first, Input).focus()
        if self.flow.context.has_workspace:
            run_in_background(self, lambda: self._save_step(step), group="state")

    def _save_step(self, step: str) -> None:
        def change(state: dict[str, Any]) -> None:
            state["onboarding"] = {"done": False, "step": step}

        self.flow.context.update_state(change)

    def _error(self, step: str, message: str) -> None:
        self.query_one(f"#{step}-error", Static).update(message)

    def _value(self, widget_id: str) -> str:
        return self.query_one(f"#{widget_id}", Input).value.strip()

    # ---- step 1 -----------------------------------------------------------------------
    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "workspace-name":
            from caracal.core.errors import ValidationError
            from caracal.core.names import check_workspace_name

            try:
                if event.value:
                    check_workspace_name(event.value.strip())
                self._error("workspace", "")
            except ValidationError as exc:
                self._error("workspace", exc.message)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        buttons = {
            "workspace-name": "create-workspace",
            "archive-path": "create-workspace",
            "archive-key": "create-workspace",
            "principal-name": "register-principal",
            "principal-email": "register-principal",
            "provider-action": "add-provider",
        }
        target = buttons.get(event.input.id or "")
        if target:
            self.query_one(f"#{target}", Button).press()
        else:
            self.focus_next()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        handlers = {
            "create-workspace": self._create_workspace,
            "register-principal": self._register_principal,
            "add-provider": self._add_provider,
            "skip-provider": self._finish,
        }
        handler = handlers.get(event.button.id or "")
        if handler is not None:
            handler()

    def _create_workspace(self) -> None:
        from pathlib import Path

        name, archive, key = (
            self._value("workspace-name"),
            self._value("archive-path"),
            self._value("archive-key"),
        )
        context = self.flow.context

        def work() -> str:
            if archive:
                from caracal.services.backup.restore import restore

                restore(context.manager, Path(archive).expanduser(), name, lock_key=key or None)
            else:
                context.manager.create(name)
            context.switch(name)
            return "provider" if archive else "principal"

        def failed(message: str) -> None:
            self._error("workspace", message)

        def done(step: str) -> None:
            self.flow.paint_status(self.query_one(StatusBar))
            if step == "provider":
                # An imported workspace may already have people; ask only if it has no human.
                run_in_background(self, self._resume_step, done=self._show)
            else:
                self._show(step)

        run_in_background(self, work, done=done, failed=failed, description="create workspace")

    # ---- step 2 -----------------------------------------------------------------------
    def _register_principal(self) -> None:
        name, email = self._value("principal-name"), self._value("principal-email")
        context = self.flow.context

        def work() -> str:
            context.caracal.principals.register("human", name, email or None)
            context.remember(f"registered human {name}")
            return "provider"

        run_in_background(self, work, done=self._show, failed=lambda m: self._error("principal", m))

    # ---- step 3 -----------------------------------------------------------------------
    def _add_provider(self) -> None:
        from caracal.core.providers import ProviderAction, ProviderResource, ProviderSpec

        name, url = self._value("provider-name"), self._value("provider-url")
        resource, action = self._value("provider-resource"), self._value("provider-action")
        context = self.flow.context

        def work() -> None:
            spec = ProviderSpec(
                name,
                url,
                resources=(ProviderResource(resource),) if resource else (),
                actions=(ProviderAction(resource, action),) if resource and action else (),
            )
            context.caracal.providers.add(spec)
            context.remember(f"added provider {name}")

        run_in_background(
            self, work, done=lambda _: self._finish(), failed=lambda m: self._error("provider", m)
        )

    def _finish(self) -> None:
        context = self.flow.context

        def work() -> None:
            def change(state: dict[str, Any]) -> None:
                state["onboarding"] = {"done": True, "step": None}

            context.update_state(change)

        run_in_background(self, work, done=lambda _: self.flow.workspace_changed(), group="state")


SCREEN = OnboardingScreen
