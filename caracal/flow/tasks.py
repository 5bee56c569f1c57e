"""Blocking work off the UI thread: every store, signing, file or Docker call runs here.

`run_in_background` runs a facade call in a thread worker through the context's lock and
hands the result back on the UI thread; failures become a readable modal, never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from textual.worker import Worker, get_current_worker

from caracal.core.errors import CaracalError
from caracal.core.progress import Cancelled

if TYPE_CHECKING:
    from textual.dom import DOMNode

    from caracal.flow.app import FlowApp

log = logging.getLogger(__name__)
T = TypeVar("T")


def run_in_background(
    node: DOMNode,
    work: Callable[[], T],
    *,
    done: Callable[[T], Any] | None = None,
    failed: Callable[[str], Any] | None = None,
    group: str = "store",
    exclusive: bool = False,
    description: str = "",
    locked: bool = True,
    cancelled: Callable[[], Any] | None = None,
) -> Worker[None]:
    """`locked=False` is for work that may overlap other facade calls (a network probe): it
    then does not queue everything else behind it. Work stopped on request (`Cancelled`)
    calls `cancelled`, never `failed`."""
    app: FlowApp = node.app  # type: ignore[assignment]

    def runner() -> None:
        worker = get_current_worker()
        try:
            result = app.context.call(work) if locked else work()
        except Cancelled:
            if cancelled is not None and not worker.is_cancelled:
                app.call_from_thread(cancelled)
            return
        except CaracalError as exc:
            if not worker.is_cancelled:
                app.call_from_thread(failed or app.show_problem, exc.message)
            return
        except Exception as exc:
            log.exception("flow task failed: %s", description or work)
            message = (
                f"Unexpected error ({type(exc).__name__}: {exc}). The workspace log has details."
            )
            if not worker.is_cancelled:
                app.call_from_thread(failed or app.show_problem, message)
            return
        if done is not None and not worker.is_cancelled:
            app.call_from_thread(done, result)

    return node.run_worker(
        runner,
        thread=True,
        group=group,
        exclusive=exclusive,
        exit_on_error=False,
        description=description,
    )
