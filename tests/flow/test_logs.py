"""Logs: the workspace log's tail, filtered by level and text, refreshed while it shows."""

from __future__ import annotations

import logging
from collections.abc import Callable
from logging.handlers import RotatingFileHandler
from pathlib import Path

from textual.widgets import RichLog, Select

from caracal.flow.app import FlowApp
from tests.flow.conftest import SIZE, screen_name, settle, until


def log_text(app: FlowApp) -> str:
    return "\n".join(strip.text for strip in app.screen.query_one("#log", RichLog).lines)


async def test_logs_show_new_records_and_hide_them_below_the_level(
    home: Path,
    world: dict[str, str],
    app_factory: Callable[..., FlowApp],
) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen", what="dashboard")
        for n in range(600):
            logging.getLogger("caracal.flowtest").info("filler %d", n)
        await pilot.press("0")
        await until(pilot, lambda: screen_name(app) == "LogsScreen", what="logs screen")
        await until(pilot, lambda: "filler 599" in log_text(app), what="the tail")
        assert "500 record(s)" in str(app.screen.query_one("#log-status").render())
        assert "filler 99\n" not in log_text(app)  # only the last 500 records
        await settle(pilot)
        assert app.screen.query_one("#log", RichLog).is_vertical_scroll_end  # at the newest

        # Written after the screen opened: the auto-refresh picks it up, no key pressed.
        logging.getLogger("caracal.flowtest").info("marker-info record for the logs screen")
        try:
            raise RuntimeError("marker traceback")
        except RuntimeError:
            logging.getLogger("caracal.flowtest").exception("marker-error went wrong")
        await until(pilot, lambda: "marker-info record" in log_text(app), what="info record")
        text = log_text(app)
        assert "INFO" in text and "caracal.flowtest: marker-info" in text
        # ...and only there: the records go to the workspace file, never to the terminal.
        caracal_logger = logging.getLogger("caracal")
        assert caracal_logger.propagate is False
        assert all(
            isinstance(h, logging.FileHandler | logging.NullHandler)
            for h in caracal_logger.handlers
        )
        assert "marker-info" not in str(app.screen.query_one("#log-status").render())
        assert "RuntimeError: marker traceback" in text  # the traceback under its record

        # `l` raises the minimum level to WARNING: the INFO record goes, the ERROR stays.
        await pilot.press("L")
        await until(
            pilot,
            lambda: app.screen.query_one("#level-filter", Select).value == "WARNING",
            what="level WARNING",
        )
        await until(pilot, lambda: "marker-info" not in log_text(app), what="info hidden")
        assert "marker-error went wrong" in log_text(app)

        # `/` then text: only the records containing it.
        await pilot.press("slash", *"traceback")
        await until(
            pilot,
            lambda: "1 record(s)" in str(app.screen.query_one("#log-status").render()),
            what="text filter",
        )
        assert "marker-error" in log_text(app)

        # enter keeps the filter and goes to the log; `escape` then goes back, and the Logs
        # screen keeps its filters when shown again.
        await pilot.press("enter", "escape")
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await pilot.press("0")
        await until(pilot, lambda: screen_name(app) == "LogsScreen")
        await until(
            pilot, lambda: "1 record(s)" in str(app.screen.query_one("#log-status").render())
        )
        assert "marker-info record" not in log_text(app)


def workspace_handler(log_file: Path) -> RotatingFileHandler:
    return next(
        h
        for h in logging.getLogger("caracal").handlers
        if isinstance(h, RotatingFileHandler) and Path(h.baseFilename) == log_file
    )


async def test_rotation_and_a_missing_log(
    home: Path,
    world: dict[str, str],
    app_factory: Callable[..., FlowApp],
) -> None:
    log_file = home / "workspaces" / "demo" / "logs" / "caracal.log"
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await pilot.press("0")
        await until(pilot, lambda: screen_name(app) == "LogsScreen")
        logging.getLogger("caracal.flowtest").warning("before the rotation")
        await until(pilot, lambda: "before the rotation" in log_text(app), what="first record")

        # The handler rotates: caracal.log becomes caracal.log.1 and a new file starts.
        workspace_handler(log_file).doRollover()
        logging.getLogger("caracal.flowtest").warning("after the rotation")
        await until(pilot, lambda: "after the rotation" in log_text(app), what="new file")
        assert log_file.with_name("caracal.log.1").exists()
        text = log_text(app)
        assert text.index("before the rotation") < text.index("after the rotation")

        for name in ("caracal.log", "caracal.log.1"):
            (log_file.parent / name).unlink()
        await until(
            pilot,
            lambda: "No log yet" in str(app.screen.query_one("#log-status").render()),
            what="missing log explained",
        )
        assert "Nothing to show." in log_text(app)
