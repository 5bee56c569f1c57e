"""The Flow application: screens, theme, keys and the command palette.

`build_app` is the one factory used by `caracal flow --local`, the tests and the container.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from caracal.flow.areas import BY_KEY
from caracal.flow.context import FlowContext
from caracal.flow.messages import DataChanged, WorkspaceOpened
from caracal.flow.tasks import run_in_background
from caracal.flow.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from caracal.core.pulse_figures import Pulse
    from caracal.flow.prefetch import Prefetch

log = logging.getLogger(__name__)
MAX_HISTORY = 50


def _screen_class(area: str) -> type[Screen[None]]:
    """Screens are imported when first shown, which keeps start-up fast."""
    import importlib

    module = importlib.import_module(f"caracal.flow.screens.{area}")
    return module.SCREEN  # type: ignore[no-any-return]


class _PaletteProviders:
    """The palette's providers, built when the palette first opens (not at start-up)."""

    def __get__(self, obj: object, owner: type) -> set[Any]:
        from caracal.flow.commands import area_providers

        return App.COMMANDS | area_providers()


class FlowApp(App[None]):
    TITLE = "Caracal Flow"
    # Below 100 columns the sidebar folds away (digits, the palette and ? still reach every
    # area) and the dashboard's tiles wrap, so the table gets the width.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    # Below 32 lines dialogs take the height they need and buttons take one line each.
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    COMMANDS = _PaletteProviders()
    CSS = """
    #area { padding: 0 1; }
    .section-title { text-style: bold; margin: 1 0 0 0; }
    .muted { color: $text-muted; }
    .toolbar { height: auto; }
    .toolbar Input { width: 1fr; }
    .toolbar Select { width: 24; }
    Screen.-narrow #nav { display: none; }
    Screen.-narrow .toolbar Select { width: 18; }
    ModalScreen.-short Button { height: 1; border: none; min-width: 8; padding: 0 1; }
    """
    BINDINGS = [
        Binding("ctrl+p", "command_palette", "Palette", id="palette", priority=True),
        Binding("question_mark", "help", "Help", id="help"),
        Binding("q", "quit_flow", "Quit", id="quit"),
        Binding("ctrl+c", "quit_flow", "Quit", show=False, id="quit-ctrl-c", priority=True),
    ]

    def __init__(
        self, context: FlowContext, *, reset_state: bool = False, prefetch: Prefetch | None = None
    ) -> None:
        super().__init__()
        self.context = context
        self.prefetch = prefetch  # the dashboard's first figures, read by a forked copy
        self.open_failed = False  # the last opening failed: no early figure may show
        self.reset_state = reset_state
        self.area = ""
        self.unsaved = False  # set by forms with edits, so quitting asks first
        self.runtime_status = (
            "container" if os.environ.get("CARACAL_RUNTIME_IN_CONTAINER") == "1" else "embedded"
        )
        self.focus_mandate: str | None = None  # the mandate the delegation screen shows
        self.confirm_destructive = True  # a preference, from the workspace's Flow state
        self._pending_area: tuple[str, str | None] | None = None
        # The workspace and ledger head the dashboard last verified, and one being verified:
        # a visit verifies again only when the head moved (kept here: the dashboard that
        # paints at start-up is not the one installed later).
        self.verified_head: tuple[str, int, str] | None = None
        self.checking_head: tuple[str, int, str] | None = None
        self.ledger_status = ""  # what that verification said, and when
        self.history: list[str] = []  # areas to go back to with esc, most recent last
        # Each area's saved filters and selection, applied when its screen is first built.
        self.saved_views: dict[str, Any] = {}

    # ---- start ----------------------------------------------------------------------------
    def on_mount(self) -> None:
        from caracal.flow.startup import onboarded, peek

        # Paint the dashboard at once when it is what will show; its figures fill in when the
        # workspace has opened (imports and store in a worker).
        name, state = peek(self.context.requested, self.context._env)
        if name is not None and onboarded(state) and not self.reset_state:
            self.apply_preferences(state)
            self.area = "dashboard"
            self.push_screen(_screen_class("dashboard")())
            if self.prefetch is not None and self.prefetch.workspace == name:
                run_in_background(
                    self,
                    self.prefetch.result,
                    done=self._prefetched,
                    locked=False,
                    group="prefetch",
                    description="first figures",
                )
        else:
            self.push_screen(_screen_class("loading")())
        # Opening imports the store, crypto and config libraries: start it once the first
        # frame is out, so it does not compete with that frame for the interpreter.
        self.call_after_refresh(
            run_in_background,
            self,
            self._open_workspace,
            done=self._opened,
            failed=self._open_failed,
            description="open workspace",
        )

    def _open_workspace(self) -> str | None:
        opened = self.context.open()
        if opened is None:
            return None
        if self.reset_state:
            self.context.reset_state()
        return opened.name

    def _prefetched(self, pulse: Pulse | None) -> None:
        """The forked copy's figures, painted unless the real opening got there first."""
        if pulse is None or self.context.has_workspace or self.open_failed:
            return
        for screen in self.screen_stack:
            if hasattr(screen, "show_prefetched"):
                screen.show_prefetched(pulse)

    def _open_failed(self, message: str) -> None:
        """Figures read before the opening checked the workspace are not shown beside the
        problem it found."""
        self.open_failed = True
        for screen in self.screen_stack:
            if hasattr(screen, "forget_prefetched"):
                screen.forget_prefetched()
        self.show_problem(message)

    def freeze_heap(self) -> None:
        """Move what is alive now (screens, the store's metadata, a search index of every
        mandate) out of the collector's reach: on a large workspace a full collection walking
        them paused the UI thread for 150-350 ms, often while a first page was being painted.
        Later garbage is still collected."""
        import gc

        gc.freeze()  # cheap: it moves lists, it walks nothing

    def _opened(self, name: str | None) -> None:
        state = self.context.read_state() if name else {}
        if name is None or not state.get("onboarding", {}).get("done", False):
            from caracal.flow.screens.onboarding import OnboardingScreen

            self.switch_screen(OnboardingScreen(resume=state.get("onboarding", {})))
            return
        self.apply_preferences(state)
        self.apply_saved_views(state)
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self.call_after_refresh(self.freeze_heap)
        self.post_message(WorkspaceOpened(name))
        pending, self._pending_area = self._pending_area, None
        saved_area = state.get("area")
        if pending is None and saved_area in BY_KEY and saved_area not in ("dashboard", "help"):
            pending = (saved_area, None)
        shown = [s for s in self.screen_stack if hasattr(s, "workspace_ready")]
        if pending is not None and pending != ("dashboard", None):
            self.goto(*pending)
        elif shown:
            # The dashboard painted at start-up (perhaps under the palette): fill it in place.
            shown[-1].workspace_ready()
        else:
            self.goto("dashboard")

    # ---- navigation -----------------------------------------------------------------------
    def goto(self, area: str, action: str | None = None, *, back: bool = False) -> None:
        """Show an area (and then run one of its screen actions, for the palette). Leaving an
        area records it, so esc comes back to it (`back` is that return: nothing recorded)."""
        if area == "help":
            self.action_help()
            return
        if area not in BY_KEY:
            return
        if not self.context.has_workspace:
            # Still opening (start-up): go there as soon as the workspace is ready.
            self._pending_area = (area, action)
            return
        if self.area and self.area != area:
            self.save_view()
        if not back and self.area and self.area != area:
            self.history = [*self.history, self.area][-MAX_HISTORY:]
        self.area = area
        # Area screens are built once and kept: coming back only reloads their data.
        if not self.is_screen_installed(area):
            self.install_screen(_screen_class(area)(), name=area)
        screen = self.get_screen(area)
        screen.needs_load = True  # type: ignore[attr-defined]
        # Drop modals and replace the area screen: one area at a time.
        while len(self.screen_stack) > 2:
            self.pop_screen()
        if self.screen is not screen:
            self.switch_screen(area)
        else:
            screen.on_screen_resume()  # type: ignore[attr-defined]
        if action is not None:
            self.call_after_refresh(lambda: self.screen.run_action(action))

    # ---- remembered state ------------------------------------------------------------------
    def apply_saved_views(self, state: dict[str, Any]) -> None:
        views = state.get("views")
        self.saved_views = dict(views) if isinstance(views, dict) else {}

    def _view_change(self) -> Any:
        """The change to flow_state.json for the area now shown (read on the UI thread)."""
        area = self.area
        screen = self.get_screen(area) if area and self.is_screen_installed(area) else None
        view = screen.view_state() if screen is not None and screen.is_mounted else None  # type: ignore[attr-defined]

        def change(state: dict[str, Any]) -> None:
            if area in BY_KEY and area != "help":
                state["area"] = area
            if view is not None:
                views = state.get("views")
                state["views"] = {**(views if isinstance(views, dict) else {}), area: view}

        return change

    def save_view(self, *, now: bool = False) -> None:
        """Remember the current area, its filters and selection (atomic write of the file)."""
        if not self.context.has_workspace or not self.area:
            return
        change = self._view_change()
        if now:
            self.context.update_state(change)
        else:
            run_in_background(
                self, lambda: self.context.update_state(change), group="state", locked=False
            )

    def go_back(self) -> None:
        """esc: the area shown before this one (the dashboard when there is none)."""
        while self.history and self.history[-1] == self.area:
            self.history.pop()
        if self.history:
            self.goto(self.history.pop(), back=True)
        elif self.area != "dashboard":
            self.goto("dashboard", back=True)

    def apply_preferences(self, state: dict[str, Any]) -> None:
        preferences = state.get("preferences", {})
        theme = preferences.get("theme")
        if theme and theme in self.available_themes and theme != self.theme:
            self.theme = theme
        self.confirm_destructive = bool(preferences.get("confirm_destructive", True))

    def _theme_changed(self, theme: Any) -> None:
        """A theme picked anywhere (Settings or Textual's own palette command) is remembered."""
        name = getattr(theme, "name", str(theme))

        def save() -> None:
            def change(state: dict[str, Any]) -> None:
                state.setdefault("preferences", {})["theme"] = name

            self.context.update_state(change)

        if self.context.has_workspace:
            run_in_background(self, save, group="state", locked=False)

    def paint_status(self, bar: StatusBar) -> None:
        caracal = self.context._caracal
        bar.workspace = caracal.name if caracal else "—"
        bar.store = caracal.location.describe() if caracal else "—"
        bar.runtime = self.runtime_status

    def workspace_changed(self) -> None:
        """After a switch or restore: every screen reloads from the new workspace, and its own
        preferences apply."""
        name = self.context.workspace_name or ""
        self.history = []  # the areas of another workspace are not "back"
        self.area = ""  # nothing of this area is saved into the new workspace's state

        def opened(state: dict[str, Any]) -> None:
            self.apply_preferences(state)
            self.apply_saved_views(state)
            for key in list(self.saved_views):  # screens already built take their view now
                if self.is_screen_installed(key):
                    view = self.saved_views.pop(key)
                    if isinstance(view, dict):
                        self.get_screen(key).apply_view(view)  # type: ignore[attr-defined]

        run_in_background(self, self.context.read_state, done=opened, group="state")
        self.post_message(WorkspaceOpened(name))
        self.goto("dashboard", back=True)

    def data_changed(self, area: str = "*") -> None:
        self.screen.post_message(DataChanged(area))

    # ---- problems and quitting ------------------------------------------------------------
    def show_problem(self, message: str, title: str = "That did not work") -> None:
        from caracal.flow.modals.problem import ProblemModal

        log.info("flow problem: %s", message)
        self.push_screen(ProblemModal(message, title))

    def action_help(self) -> None:
        from caracal.flow.modals.help import HelpModal

        if not isinstance(self.screen, HelpModal):
            self.push_screen(HelpModal(self.area or None))

    def action_goto(self, area: str) -> None:
        self.goto(area)

    def has_unsaved_form(self) -> bool:
        from caracal.flow.modals.form import FormModal

        return self.unsaved or any(
            isinstance(screen, FormModal) and screen.dirty for screen in self.screen_stack
        )

    def action_quit_flow(self) -> None:
        if not self.has_unsaved_form():
            self.quit_now()
            return
        from caracal.flow.modals.confirm import ConfirmModal

        def answered(yes: bool | None) -> None:
            if yes:
                self.quit_now()

        self.push_screen(
            ConfirmModal("Quit and lose the unsaved form?", confirm_label="Quit"), answered
        )

    def quit_now(self) -> None:
        # A small file written as Flow ends: in place, so it is on disk before the exit.
        try:
            self.save_view(now=True)
        except Exception:  # never keep someone from quitting
            log.exception("could not save Flow state")
        self.exit()

    def on_unmount(self) -> None:
        self.context.close()


def build_app(
    workspace: str | None = None,
    *,
    reset_state: bool = False,
    env: dict[str, str] | None = None,
    prefetch: Prefetch | None = None,
) -> FlowApp:
    return FlowApp(FlowContext(workspace, env), reset_state=reset_state, prefetch=prefetch)


def run(
    workspace: str | None = None,
    *,
    reset_state: bool = False,
    prefetch: Prefetch | None = None,
    **_: Any,
) -> None:
    app = build_app(workspace, reset_state=reset_state, prefetch=prefetch)
    try:
        app.run()
    finally:
        if prefetch is not None:
            prefetch.cancel()
