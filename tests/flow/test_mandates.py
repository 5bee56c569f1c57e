"""Mandate workflows through the keyboard: issue, validate, delegate, revoke with cascade."""

from __future__ import annotations

from typing import Any

from textual.widgets import Select, SelectionList

from caracal.services.facade import Caracal
from caracal.services.ledger_reads import LedgerFilter
from tests.flow.conftest import SIZE, screen_name, settle, until


async def open_mandates(pilot: Any) -> None:
    app = pilot.app
    await until(pilot, lambda: screen_name(app) == "DashboardScreen", what="dashboard")
    await pilot.press("6")
    await until(
        pilot,
        lambda: screen_name(app) == "MandatesScreen" and app.screen.query_one("#mandates").loaded,
    )


def choose(app: Any, select_id: str, value: str) -> None:
    app.screen.query_one(f"#{select_id}", Select).value = value


async def test_issue_a_mandate_from_the_form(world: dict[str, str], app_factory: Any) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_mandates(pilot)
        await pilot.press("i")
        await until(pilot, lambda: screen_name(app) == "IssueMandateModal")
        choose(app, "issuer", world["alice"])
        choose(app, "subject", world["w1"])
        await until(
            pilot,
            lambda: app.screen.query_one("#actions", SelectionList).option_count == 3,
            what="bounds",
        )
        assert "valid at most 1h" in str(app.screen.query_one("#bounds").render())
        app.screen.query_one("#resources", SelectionList).select("provider:github:resource:repos")
        app.screen.query_one("#actions", SelectionList).select("provider:github:action:read")
        await pilot.click("#ttl")
        await pilot.press("ctrl+a", "ctrl+k", *"20m")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: screen_name(app) == "MandatesScreen", what="back to the list")
        await until(
            pilot, lambda: app.screen.query_one("#mandates").total == 2, what="two mandates"
        )
    with Caracal.open("demo") as caracal:
        held = caracal.mandates.listing(subject_ref="w1")
    assert len(held) == 1 and held[0]["actions"] == ["provider:github:action:read"]
    assert held[0]["expires_at"] - held[0]["not_before"] == 1200


async def test_issue_over_the_policy_is_refused_inline(
    world: dict[str, str], app_factory: Any
) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_mandates(pilot)
        await pilot.press("i")
        await until(pilot, lambda: screen_name(app) == "IssueMandateModal")
        choose(app, "issuer", world["alice"])
        choose(app, "subject", world["w1"])
        await until(
            pilot, lambda: app.screen.query_one("#actions", SelectionList).option_count == 3
        )
        app.screen.query_one("#resources", SelectionList).select("provider:github:resource:repos")
        app.screen.query_one("#actions", SelectionList).select("provider:github:action:read")
        await pilot.click("#ttl")
        await pilot.press("ctrl+a", "ctrl+k", *"3h", "ctrl+s")
        await until(
            pilot,
            lambda: (
                "validity 3h exceeds the policy maximum of 1h"
                in str(app.screen.query_one("#form-error").render())
            ),
        )
        assert screen_name(app) == "IssueMandateModal"
        await pilot.press("escape")  # edits: asked before they are thrown away
        await until(pilot, lambda: screen_name(app) == "ConfirmModal")
        await pilot.press("y")
        await until(pilot, lambda: screen_name(app) == "MandatesScreen")
    with Caracal.open("demo") as caracal:
        refused = caracal.ledger.events(LedgerFilter(types=["mandate.issue_refused"]))
    assert refused[0]["reason_code"] == "POLICY_VALIDITY_EXCEEDED"


async def test_validate_allowed_and_denied(world: dict[str, str], app_factory: Any) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_mandates(pilot)
        await pilot.press("v")
        await until(pilot, lambda: screen_name(app) == "ValidateMandateModal")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "ALLOWED" in str(app.screen.query_one("#decision").render()))
        choose(app, "action", "provider:github:action:comment")
        await pilot.press("ctrl+s")
        await until(
            pilot, lambda: "ACTION_OUT_OF_SCOPE" in str(app.screen.query_one("#decision").render())
        )
        await pilot.press("escape")
        await settle(pilot)
    with Caracal.open("demo") as caracal:
        decisions = caracal.ledger.events(LedgerFilter(types=["validation."]), newest_first=False)
    assert [(e["type"], e["reason_code"], e["actor"].split(":")[0]) for e in decisions] == [
        ("validation.allowed", "ALLOWED", "flow"),
        ("validation.denied", "ACTION_OUT_OF_SCOPE", "flow"),
    ]


async def test_delegate_then_revoke_with_cascade(world: dict[str, str], app_factory: Any) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_mandates(pilot)
        await pilot.press("d")
        await until(pilot, lambda: screen_name(app) == "DelegateMandateModal")
        choose(app, "subject", world["w1"])
        app.screen.query_one("#actions", SelectionList).deselect("provider:github:action:write")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: screen_name(app) == "MandatesScreen")
        await until(pilot, lambda: app.screen.query_one("#mandates").total == 2)
        # The root is the older of the two: the list is newest first.
        await pilot.press("down")
        await until(
            pilot, lambda: app.screen.query_one("#mandates").current_row["id"] == world["root"]
        )
        await pilot.press("x")
        await until(pilot, lambda: screen_name(app) == "RevokeMandateModal")
        summary = str(app.screen.query_one("#revoke-summary").render())
        assert "2 mandate(s) will be revoked" in summary
        await pilot.click("#reason")
        await pilot.press(*"rotating credentials", "ctrl+s")
        await until(pilot, lambda: screen_name(app) == "MandatesScreen")
        await settle(pilot)
    with Caracal.open("demo") as caracal:
        rows = caracal.mandates.listing()
        delegated = caracal.mandates.listing(subject_ref="w1")[0]
    assert {r["status"] for r in rows} == {"revoked"}
    assert delegated["parent_id"] == world["root"] and delegated["actions"] == [
        "provider:github:action:read"
    ]
    assert all(r["revoked_reason"] == "rotating credentials" for r in rows)


async def test_search_filters_and_token_copy(world: dict[str, str], app_factory: Any) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_mandates(pilot)
        await pilot.press("slash", *world["root"][:12])
        await until(pilot, lambda: app.screen.query_one("#mandates").total == 1)
        await pilot.press(*"zzz")
        await until(pilot, lambda: app.screen.query_one("#mandates").total == 0)
        await pilot.press("ctrl+a", "ctrl+k", "enter")
        await until(pilot, lambda: app.screen.query_one("#mandates").total == 1)
        await pilot.press("t")
        await until(pilot, lambda: screen_name(app) == "TokenModal")
        await pilot.press("c")
        with Caracal.open("demo") as caracal:
            token = caracal.mandates.get(world["root"])["token"]
            folder = caracal.paths.root
        assert app.clipboard == token
        said = lambda: str(app.screen.query_one("#copy-status").render())  # noqa: E731
        # Honest: it says how the token went out, never that it was copied.
        assert "Sent to the terminal's clipboard (OSC 52)" in said() and "copied" not in said()
        await pilot.press("w")
        written = folder / "tokens" / f"{world['root']}.jwt"
        await until(pilot, lambda: "Written to" in said(), what="written")
        assert written.read_text().strip() == token
        assert written.stat().st_mode & 0o777 == 0o600


async def test_revoke_on_an_already_revoked_mandate_says_so(
    world: dict[str, str], app_factory: Any
) -> None:
    with Caracal.open("demo") as caracal:
        caracal.mandates.revoke(world["root"], "done with it")
        events = caracal.ledger.head()[0]
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_mandates(pilot)
        await pilot.press("x")
        await until(pilot, lambda: screen_name(app) == "ProblemModal", what="explained")
        message = str(app.screen.query_one("#message").render())
        assert "already revoked" in message and "0 mandate" not in message
        # When, by whom and why, from the revocation itself.
        assert "since 20" in message and "(done with it)" in message
        assert " by " in message
        await pilot.press("escape")
        await until(pilot, lambda: screen_name(app) == "MandatesScreen")
        await settle(pilot)
        assert app.focused is app.screen.query_one("#mandates")
    with Caracal.open("demo") as caracal:
        assert caracal.ledger.head()[0] == events  # nothing recorded


async def test_validate_wording_and_no_stale_decision(
    world: dict[str, str], app_factory: Any
) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_mandates(pilot)
        await pilot.press("v")
        await until(pilot, lambda: screen_name(app) == "ValidateMandateModal")
        await pilot.press("ctrl+s")
        decision = lambda: str(app.screen.query_one("#decision").render())  # noqa: E731
        await until(pilot, lambda: "ALLOWED" in decision())
        assert "allowed" not in decision().replace("ALLOWED", "")  # not "ALLOWED — allowed"
        app.screen.query_one("#intent").focus()
        await pilot.press(*"{bad", "ctrl+s")
        error = lambda: str(app.screen.query_one("#form-error").render())  # noqa: E731
        await until(pilot, lambda: "strict JSON" in error(), what="intent error")
        assert "ALLOWED" not in decision() and "--" not in error()


async def test_validate_answer_is_in_view_on_a_small_terminal(
    world: dict[str, str], app_factory: Any
) -> None:
    """At 80×24 the fields scroll; the decision (and an error) must still be on the screen."""
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_mandates(pilot)
        await pilot.press("v")
        await until(pilot, lambda: screen_name(app) == "ValidateMandateModal")
        app.screen.query_one("#intent").focus()  # scrolls the fields to their end
        await pilot.press("ctrl+s")
        decision = app.screen.query_one("#decision")
        await until(pilot, lambda: "ALLOWED" in str(decision.render()))
        await settle(pilot)
        assert decision.region.height >= 1 and app.screen.region.contains_region(decision.region)
        await pilot.press(*"{bad", "ctrl+s")
        error = app.screen.query_one("#form-error")
        await until(pilot, lambda: "strict JSON" in str(error.render()), what="intent error")
        await settle(pilot)
        assert error.region.height >= 1 and app.screen.region.contains_region(error.region)
        assert not decision.display


async def test_issue_pressed_before_the_principals_arrive_still_offers_them(
    world: dict[str, str], app_factory: Any
) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_mandates(pilot)
        # As on a loaded machine: the screen is up, its principals not read yet.
        app.screen.principals = []
        await pilot.press("i")
        await until(pilot, lambda: screen_name(app) == "IssueMandateModal", what="issue form")
        issuer = app.screen.query_one("#issuer", Select)
        labels = [str(prompt) for prompt, _ in issuer._options if _ is not Select.BLANK]
        assert any("(human)" in label for label in labels), labels
