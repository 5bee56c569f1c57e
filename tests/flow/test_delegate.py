"""The delegate form offers what the rules allow, and refuses to open when nothing is."""

from __future__ import annotations

from typing import Any

from textual.widgets import Input, Select

from caracal.services.facade import Caracal
from tests.flow.conftest import SIZE, ok, screen_name, settle, until
from tests.flow.test_mandates import choose, open_mandates


def _offered(app: Any) -> set[str]:
    select = app.screen.query_one("#subject", Select)
    return {str(label) for label, value in select._options if isinstance(value, str)}


async def test_only_allowed_subjects_and_the_depth_the_rules_permit(
    world: dict[str, str], app_factory: Any
) -> None:
    flat = ok("principal", "register", "--kind", "worker", "--name", "w0").stdout.strip()
    ok(
        "policy", "create", "--principal", "w0", "--max-validity", "1h",
        "--delegation-depth", "0", "--resource", "provider:github:resource:*",
        "--action", "provider:github:action:*",
    )  # fmt: skip
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_mandates(pilot)
        await pilot.press("d")
        await until(pilot, lambda: screen_name(app) == "DelegateMandateModal")
        # The source is held by an orchestrator: a human is never offered, and says why.
        assert _offered(app) == {"w1 (worker)", "svc (service)", "w0 (worker)"}
        refused = str(app.screen.query_one("#refused").render())
        assert "alice (human)" in refused and "may not grant authority" in refused
        choose(app, "subject", world["w1"])
        await pilot.pause()
        assert app.screen.query_one("#depth", Input).value == "1"  # source 2, minus one
        choose(app, "subject", flat)
        await pilot.pause()
        assert app.screen.query_one("#depth", Input).value == "0"
        assert "0 is the only choice for w0" in str(app.screen.query_one("#depth-note").render())
        await pilot.press("ctrl+s")  # the default depth is accepted, not refused on submit
        await until(pilot, lambda: screen_name(app) == "MandatesScreen", what="delegated")
        await settle(pilot)
    with Caracal.open("demo") as caracal:
        held = caracal.mandates.listing(subject_ref="w0")
    assert len(held) == 1 and held[0]["depth"] == 0 and held[0]["parent_id"] == world["root"]


async def test_a_revoked_source_is_refused_before_the_form(
    world: dict[str, str], app_factory: Any
) -> None:
    with Caracal.open("demo") as caracal:
        caracal.mandates.revoke(world["root"], "rotating credentials")
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_mandates(pilot)
        await pilot.press("d")
        await until(pilot, lambda: screen_name(app) == "ProblemModal", what="refused")
        message = str(app.screen.query_one("#message").render())
        assert "revoked" in message and "rotating credentials" in message
        assert "nothing can be delegated" in message
