"""Delegation: a mandate's ancestors and descendants as a tree, coloured by status."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widgets import Input, Static, Tree

from caracal.flow.screens.base import AreaScreen
from caracal.flow.tasks import run_in_background

COMMANDS = [("Show a mandate's tree", "focus_filter")]
COLOURS = {
    "active": "green",
    "revoked": "red",
    "expired": "yellow",
    "pending": "cyan",
    "blocked": "magenta",
}


class DelegationScreen(AreaScreen):
    AREA = "delegation"

    def compose_area(self) -> ComposeResult:
        yield Input(placeholder="/ mandate id (or the first 8+ characters)", id="filter")
        yield Static("", id="graph-hint", classes="muted")
        yield Tree("no mandate chosen", id="graph")

    def load(self) -> None:
        focus = self.flow.focus_mandate
        if focus:
            self.query_one("#filter", Input).value = focus
            self._show(focus)
        else:
            self.query_one("#graph-hint", Static).update(
                "Press / and type a mandate id, or press T on the Mandates screen."
            )
            # Not the text field: digits keep switching areas until / is pressed on purpose.
            self.query_one("#graph").focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.flow.focus_mandate = event.value.strip()
            self._show(event.value.strip())

    def _show(self, mandate_id: str) -> None:
        caracal = self.context.caracal

        def work() -> tuple[dict[str, Any], dict[str, str]]:
            graph = caracal.mandates.graph(mandate_id)
            return graph, {p["id"]: p["name"] for p in caracal.principals.all()}

        run_in_background(self, work, done=lambda r: self._draw(*r))

    def _draw(self, graph: dict[str, Any], names: dict[str, str]) -> None:
        def label(row: dict[str, Any], mark: str = "") -> str:
            colour = COLOURS.get(row["status"], "white")
            who = f"{names.get(row['issuer_id'], row['issuer_id'])} → {names.get(row['subject_id'], row['subject_id'])}"
            return f"[{colour}]{row['id']}[/]{mark}  {who}  [{colour}]{row['status']}[/]"

        tree: Tree[str] = self.query_one("#graph", Tree)
        tree.clear()
        node = tree.root
        ancestors = graph["ancestors"]
        if ancestors:
            tree.root.set_label(label(ancestors[0]))
            for row in ancestors[1:]:
                node = node.add(label(row), expand=True)
            node = node.add(label(graph["mandate"], "  ◀"), expand=True)
        else:
            tree.root.set_label(label(graph["mandate"], "  ◀"))

        def add(parent: Any, children: list[dict[str, Any]]) -> None:
            for child in children:
                branch = parent.add(label(child), expand=True)
                add(branch, child["children"])

        add(node, graph["descendants"])
        tree.root.expand_all()
        self.query_one("#graph-hint", Static).update(
            f"{len(ancestors)} ancestor(s) above, the chosen mandate marked ◀, descendants below."
        )
        tree.focus()


SCREEN = DelegationScreen
