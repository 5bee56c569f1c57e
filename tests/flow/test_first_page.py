"""Opening Mandates or Ledger paints its first page without waiting for other work: the page is
read once, a slow save of the view does not hold it up, and the Mandates search index is read
only after the page is painted."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from caracal.flow.screens.ledger import LedgerPages
from caracal.flow.widgets.paged_table import PagedTable
from caracal.services.mandates import MandateService
from tests.flow.conftest import SIZE, screen_name, settle, until


async def test_ledger_reads_its_first_page_once(
    world: dict[str, str], app_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    fetch = LedgerPages.fetch

    def counted(self: LedgerPages, offset: int, limit: int) -> Any:
        reads.append(offset)
        return fetch(self, offset, limit)

    monkeypatch.setattr(LedgerPages, "fetch", counted)
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await settle(pilot)
        await pilot.press("8")
        await until(pilot, lambda: app.screen.query_one("#events", PagedTable).loaded)
        assert reads == [0]


async def test_a_slow_view_save_does_not_hold_up_the_next_page(
    world: dict[str, str], app_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from caracal.home import flow_state

    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await settle(pilot)
        write, saved = flow_state.write_state, threading.Event()

        def slow_disk(path: Any, state: Any) -> None:
            time.sleep(4)  # two fsyncs on a busy disk
            write(path, state)
            saved.set()

        monkeypatch.setattr(flow_state, "write_state", slow_disk)
        await pilot.press("8")  # leaving the dashboard saves the view
        await until(pilot, lambda: app.screen.query_one("#events", PagedTable).loaded)
        assert not saved.is_set(), "the first page waited for the view to be saved"
        await until(pilot, saved.is_set)


async def test_mandates_search_index_is_read_after_the_first_page(
    world: dict[str, str], app_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    prepare, loaded = MandateService.prepare_search, PagedTable._loaded

    def prepare_search(self: MandateService) -> None:
        order.append("search index")
        prepare(self)

    def painted(self: PagedTable, *args: Any) -> None:
        loaded(self, *args)
        if self.id == "mandates" and self.loaded:
            order.append("first page")

    monkeypatch.setattr(MandateService, "prepare_search", prepare_search)
    monkeypatch.setattr(PagedTable, "_loaded", painted)
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await settle(pilot)
        await pilot.press("6")
        await until(pilot, lambda: "search index" in order, what="the search index read")
        assert order[:2] == ["first page", "search index"]


async def test_mandates_reads_its_first_page_once(
    world: dict[str, str], app_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from caracal.flow.screens.mandates import MandatePages

    reads: list[int] = []
    fetch = MandatePages.fetch

    def counted(self: MandatePages, offset: int, limit: int) -> Any:
        reads.append(offset)
        return fetch(self, offset, limit)

    monkeypatch.setattr(MandatePages, "fetch", counted)
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await settle(pilot)
        await pilot.press("6")
        await until(pilot, lambda: app.screen.query_one("#mandates", PagedTable).loaded)
        await settle(pilot)
        # The filter lists telling their values when mounted do not read the same page again.
        assert reads == [0]


async def test_mandates_search_index_waits_for_the_frame_that_paints_the_page(
    world: dict[str, str], app_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    painted_before: list[bool] = []
    prepare = MandateService.prepare_search
    app = app_factory()

    def prepare_search(self: MandateService) -> None:
        table = app.screen.query_one("#mandates", PagedTable)
        painted_before.append(table.painted_at >= table.loaded_at > 0)
        prepare(self)

    monkeypatch.setattr(MandateService, "prepare_search", prepare_search)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await settle(pilot)
        await pilot.press("6")
        await until(pilot, lambda: painted_before, what="the search index read")
        assert painted_before == [True]


async def test_ledger_page_does_not_wait_for_its_count(
    world: dict[str, str], app_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted, count = threading.Event(), LedgerPages.count

    def slow_count(self: LedgerPages) -> int:
        counted.wait(20)  # every denial of a large ledger
        return count(self)

    monkeypatch.setattr(LedgerPages, "count", slow_count)
    monkeypatch.setattr(PagedTable, "PAGE", 2)  # a full first page: more events follow
    app = app_factory()
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: screen_name(app) == "DashboardScreen")
            await settle(pilot)
            await pilot.press("8")
            await until(pilot, lambda: screen_name(app) == "LedgerScreen")
            table = app.screen.query_one("#events", PagedTable)
            await until(pilot, lambda: table.loaded, what="the first page")
            assert table.counting and table.total == 2 and table.current_row is not None
            counted.set()
            await until(pilot, lambda: not table.counting and table.total > 2, what="the count")
    finally:
        counted.set()


async def test_mandate_detail_names_principals_that_load_after_the_page(
    world: dict[str, str], app_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from caracal.services.principals import PrincipalService

    page_shown, everyone = threading.Event(), PrincipalService.all

    def late(self: PrincipalService) -> Any:
        page_shown.wait(20)  # the names arrive after the first page
        return everyone(self)

    monkeypatch.setattr(PrincipalService, "all", late)
    app = app_factory()
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: screen_name(app) == "DashboardScreen")
            await settle(pilot)
            await pilot.press("6")
            await until(pilot, lambda: screen_name(app) == "MandatesScreen")
            table = app.screen.query_one("#mandates", PagedTable)
            await until(pilot, lambda: table.loaded, what="the first page")
            row = table.current_row
            assert row is not None
            detail = lambda: str(app.screen.query_one("#detail").render())  # noqa: E731
            await until(pilot, lambda: row["subject_id"] in detail(), what="the detail")
            page_shown.set()
            await until(pilot, lambda: row["subject_id"] not in detail(), what="names")
    finally:
        page_shown.set()
