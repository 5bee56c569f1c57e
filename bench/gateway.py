"""The provider gateway and forward authentication under load, from a separate process.

`gateway`: `caracal serve` (one process, the ledger on) in front of a trivial upstream HTTP
server on 127.0.0.1 in its own process (uvicorn, a bare ASGI app that answers `{"ok":true}`
only when the provider's credential came with the call, and counts the calls it served). The
provider `api` (bearer auth, one declared action `items:read:GET:/items`) points at it, and one
mandate allows that action. From 16 keep-alive connections for 10 s (3 s with --quick) after a
warm-up, with `wrk` when it is installed, else with `bench/loadgen.py`:

- `GET /v1/providers/api/items/1` with the mandate as `Authorization: Bearer`: decided,
  recorded, forwarded with the credential in place of the mandate, answered. Target ≥ 2,000
  calls/s on SQLite; the same on PostgreSQL (`CARACAL_BENCH_PG_DSN`, as `runtime-authorize`).
- `GET /v1/forward-auth` as nginx `auth_request` sends it (`X-Original-Method`,
  `X-Original-URI: /api/items/1`): decided and recorded, nothing forwarded. Target ≥ 5,000
  decisions/s on SQLite.
- The upstream alone (the credential sent directly): the ceiling the gateway works under.

A run fails unless every measured answer was the expected one (the upstream's `{"ok":true}`
through the gateway, an allow from forward authentication), the ledger grew by exactly the
measured answers (plus at most one request per connection that wrk leaves in flight when it
stops) with no denial, the upstream received one call per gateway allow, and the ledger
verifies.

The upstream alone: `python -m bench.gateway upstream --port P --secret S`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import wrk
from bench.common import Result, Sizes, _Profiling, temporary_home
from bench.runtime import _drop, _free_port, _pg_dsn, _recorded_when_settled, _start_server

ROOT = Path(__file__).resolve().parent.parent
BENCH = "gateway"
CONNECTIONS = 16
PROVIDER = "api"
SECRET = "bench-upstream-credential"  # noqa: S105 - a throw-away upstream's
PATH = "/items/1"
OK_BODY = '{"ok":true}'
ALLOWED_PREFIX = '{"allowed":true'


# ---- the upstream (its own process) --------------------------------------------------------
def _upstream_app(secret: str) -> Any:
    """200 `{"ok":true}` for a call carrying the credential, 401 otherwise; `GET /count` says
    how many calls it served with the credential."""
    expected = f"Bearer {secret}".encode()
    served = [0]
    ok = OK_BODY.encode()
    ok_headers = [(b"content-type", b"application/json"), (b"content-length", b"11")]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/count":
            body = json.dumps({"calls": served[0]}).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return
        authorized = any(k == b"authorization" and v == expected for k, v in scope["headers"])
        if authorized:
            served[0] += 1
        await send(
            {
                "type": "http.response.start",
                "status": 200 if authorized else 401,
                "headers": ok_headers if authorized else [(b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": ok if authorized else b""})

    return app


def _start_upstream(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.gateway",
            "upstream",
            "--port",
            str(port),
            "--secret",
            SECRET,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            _upstream_count(port)
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the upstream did not start") from None
            time.sleep(0.1)


def _upstream_count(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=5) as reply:
        return int(json.loads(reply.read())["calls"])


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


# ---- the runtime (its own process) ---------------------------------------------------------
def _profile_report(label: str, path: Path) -> None:
    import io
    import pstats

    if not path.exists():
        print(f"    no profile of {label} was written", flush=True)
        return
    buf = io.StringIO()
    stats = pstats.Stats(str(path), stream=buf).strip_dirs()
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(25)
    _Profiling.reports.append((label, buf.getvalue()))


# ---- the workspace -------------------------------------------------------------------------
def _workspace(store_url: str | None, upstream_url: str) -> str:
    """The workspace, the provider with its credential, a policy, and a mandate (through the
    facade: the set-up is not what is measured, and each CLI run costs a process start)."""
    from caracal.core.providers import ProviderAction, ProviderResource, ProviderSpec
    from caracal.services.facade import Caracal
    from caracal.services.workspaces import WorkspaceManager

    WorkspaceManager().create("bench", store_url=store_url)
    with Caracal.open("bench") as app:
        app.providers.add(
            ProviderSpec(
                PROVIDER,
                upstream_url,
                auth="bearer",
                resources=(ProviderResource("items"),),
                actions=(ProviderAction("items", "read", "GET", "/items"),),
            ),
            SECRET,
        )
        app.principals.register("human", "alice")
        app.principals.register("worker", "agent")
        app.policies.create(
            "agent", "1h", [f"provider:{PROVIDER}:resource:*"], [f"provider:{PROVIDER}:action:*"], 0
        )
        issued = app.mandates.issue(
            "alice",
            "agent",
            [f"provider:{PROVIDER}:resource:items"],
            [f"provider:{PROVIDER}:action:read"],
            "1h",
        )
        return issued.token


# ---- load ----------------------------------------------------------------------------------
def _wrk(url: str, headers: dict[str, str], expect: str, seconds: float) -> dict[str, float]:
    """`GET url` with `headers`; counts the answers that are 200 with a body starting with
    `expect`."""
    lines = [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    script = "\n".join(lines) + f"\nlocal expect = {json.dumps(expect)}\n"
    accepted = "status == 200 and body:sub(1, #expect) == expect"
    return wrk.run(url, script, seconds=seconds, connections=CONNECTIONS, accepted=accepted)


def _loadgen(url: str, headers: dict[str, str], expect: str, seconds: float) -> dict[str, float]:
    """The fallback driver; it sends POST (its only method), which the gateway forwards as
    such: the action is declared for GET only, so it is driven through forward authentication
    (whose original method is a header) and the upstream alone."""
    port, path = url.removeprefix("http://127.0.0.1:").split("/", 1)
    command = [
        sys.executable, "-m", "bench.loadgen", "--port", port, "--path", f"/{path}",
        "--connections", str(CONNECTIONS), "--seconds", str(seconds), "--body", "",
    ]  # fmt: skip
    for name, value in headers.items():
        command += ["--header", f"{name}:{value}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    figures: dict[str, float] = json.loads(out)
    # loadgen counts bodies starting with '{"allowed":true'; others count as answered 2xx.
    ok = (
        figures["allowed"] if expect == ALLOWED_PREFIX else figures["requests"] - figures["non_2xx"]
    )
    figures["expected"] = ok
    return figures


def _load(
    url: str, headers: dict[str, str], expect: str, seconds: float
) -> tuple[dict[str, float], str]:
    if shutil.which("wrk"):
        return _wrk(url, headers, expect, seconds), "wrk"
    return _loadgen(url, headers, expect, seconds), "loadgen"


def _check_answers(figures: dict[str, float], what: str) -> None:
    answered = int(figures["requests"])
    if answered == 0 or figures["expected"] != answered or figures["socket_errors"]:
        raise RuntimeError(
            f"{what}: {answered} answers, {figures['expected']:.0f} of them the expected one, "
            f"{figures['socket_errors']:.0f} socket errors: every answer must be the expected one"
        )


def _check_recorded(figures: dict[str, float], recorded: int, what: str) -> None:
    answered = int(figures["requests"])
    slack = int(figures["in_flight_at_end"])
    if not answered <= recorded <= answered + slack:
        raise RuntimeError(
            f"{what}: {answered} answers in the measured window but the ledger grew by "
            f"{recorded} (expected {answered} to {answered + slack})"
        )


# ---- one run -------------------------------------------------------------------------------
def _run(
    store_url: str | None, seconds: float, warm: float, direct: bool, forward: bool = True
) -> dict[str, tuple[dict[str, float], str]]:
    """Figures by what was measured: "upstream" (when `direct`), "gateway", "forward-auth"."""
    out: dict[str, tuple[dict[str, float], str]] = {}
    upstream_port = _free_port()
    upstream = _start_upstream(upstream_port)
    try:
        upstream_url = f"http://127.0.0.1:{upstream_port}"
        token = _workspace(store_url, upstream_url)
        if direct:
            plain = {"Authorization": f"Bearer {SECRET}"}
            _load(upstream_url + PATH, plain, OK_BODY, warm)
            out["upstream"] = _load(upstream_url + PATH, plain, OK_BODY, seconds)
            _check_answers(out["upstream"][0], "the upstream alone")
        port = _free_port()
        profile = Path(tempfile.mkdtemp()) / "serve.prof" if _Profiling.kind else None
        server = _start_server(port, profile)
        try:
            bearer = {"Authorization": f"Bearer {token}"}
            if shutil.which("wrk"):
                out["gateway"] = _through_gateway(port, upstream_port, bearer, seconds, warm)
            if forward:
                out["forward-auth"] = _forward_auth(port, bearer, seconds, warm)
        finally:
            _stop_server(server, profile, "PostgreSQL" if store_url else "SQLite")
    finally:
        _stop(upstream)
    _check_ledger()
    return out


def _through_gateway(
    port: int, upstream_port: int, bearer: dict[str, str], seconds: float, warm: float
) -> tuple[dict[str, float], str]:
    url = f"http://127.0.0.1:{port}/v1/providers/{PROVIDER}{PATH}"
    start, sent = _recorded_when_settled(), _upstream_count(upstream_port)
    _load(url, bearer, OK_BODY, warm)
    before = _recorded_when_settled()
    found = _load(url, bearer, OK_BODY, seconds)
    settled = _recorded_when_settled()
    _check_answers(found[0], "the gateway")
    _check_recorded(found[0], settled - before, "the gateway")
    _check_forwarded(settled - start, _upstream_count(upstream_port) - sent)
    return found


def _forward_auth(
    port: int, bearer: dict[str, str], seconds: float, warm: float
) -> tuple[dict[str, float], str]:
    """As nginx `auth_request` asks: the original method and URI in headers."""
    auth = {**bearer, "X-Original-Method": "GET", "X-Original-URI": f"/{PROVIDER}{PATH}"}
    url = f"http://127.0.0.1:{port}/v1/forward-auth"
    _load(url, auth, ALLOWED_PREFIX, warm)
    before = _recorded_when_settled()
    found = _load(url, auth, ALLOWED_PREFIX, seconds)
    recorded = _recorded_when_settled() - before
    _check_answers(found[0], "forward authentication")
    _check_recorded(found[0], recorded, "forward authentication")
    return found


def _stop_server(server: subprocess.Popen[bytes], profile: Path | None, store: str) -> None:
    if profile is not None:
        # uvicorn re-raises SIGTERM after its shutdown, which would end the process before
        # cProfile writes; SIGINT becomes a KeyboardInterrupt that it writes through.
        server.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(60)
    _stop(server)
    if profile is not None:
        _profile_report(f"gateway: caracal serve on {store}", profile)
        shutil.rmtree(profile.parent, ignore_errors=True)


def _check_forwarded(allowed: int, forwarded: int) -> None:
    """Never a call forwarded without an allow; an allowed call whose caller left when a load
    run stopped may go unsent (at most one per connection, warm-up and measured run)."""
    if not allowed - 2 * CONNECTIONS <= forwarded <= allowed:
        raise RuntimeError(
            f"the gateway allowed {allowed} calls but {forwarded} reached the upstream"
        )


def _check_ledger() -> None:
    """No call was denied, and the ledger verifies."""
    from caracal.services.facade import Caracal
    from caracal.services.ledger_reads import LedgerFilter

    with Caracal.open("bench") as app:
        denied = app.ledger.count(LedgerFilter(types=["validation.denied"]))
        if denied:
            raise RuntimeError(f"{denied} calls were denied")
        report = app.ledger.verify()
        if not report.ok:
            raise RuntimeError(f"the ledger does not verify after the load: {report.problem}")


def _results(label: str, found: dict[str, tuple[dict[str, float], str]]) -> list[Result]:
    sqlite = label == "SQLite"
    out: list[Result] = []
    for what, unit_name, target in (
        ("gateway", "calls/s", 2000),
        ("forward-auth", "decisions/s", 5000),
    ):
        if what not in found:
            continue
        figures, driver = found[what]
        notes = [
            f"{driver}, {CONNECTIONS} connections: {figures['requests']:.0f} answers, each the "
            "expected one and recorded in the ledger"
            + ("; each reached the upstream with the credential" if what == "gateway" else ""),
            f"p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms",
        ]
        out.append(
            Result(
                BENCH,
                f"{label}: {what} {unit_name}",
                figures["rate"],
                "/s",
                target=target if sqlite else None,
                higher_is_better=True,
                notes=notes,
            )
        )
    if "upstream" in found:
        figures, driver = found["upstream"]
        out.append(
            Result(
                BENCH,
                "upstream alone: calls/s",
                figures["rate"],
                "/s",
                higher_is_better=True,
                notes=[
                    f"{driver}, no gateway; p50 {figures['p50_ms']:.2f} ms, "
                    f"p99 {figures['p99_ms']:.2f} ms"
                ],
            )
        )
    return out


def bench_gateway(sizes: Sizes) -> list[Result]:
    """Calls through the provider gateway (decided, recorded, forwarded with the credential)
    and forward-auth decisions, beside the upstream alone: rates on SQLite and PostgreSQL."""
    quick = sizes.backup_runs == 1
    seconds, warm = (2.0, 1.0) if quick else (10.0, 2.0)
    out: list[Result] = []
    with temporary_home():
        out += _results("SQLite", _run(None, seconds, warm, direct=True))
    if not shutil.which("wrk"):
        print("    wrk is not installed: the gateway itself is not driven (loadgen only POSTs)")
    url = _pg_dsn()
    if url is None:
        print("    PostgreSQL unreachable: its figures are skipped", flush=True)
        return out
    try:
        with temporary_home():
            store_url = url.replace("postgresql://", "postgresql+psycopg://")
            # --quick measures the gateway only there, to stay well under a minute.
            found = _run(store_url, seconds, warm, direct=False, forward=not quick)
            out += _results("PostgreSQL", found)
    finally:
        _drop(url)
    return out


BENCHMARKS: dict[str, Any] = {BENCH: bench_gateway}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway")
    parser.add_argument("role", choices=["upstream"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args()
    import uvicorn

    uvicorn.run(
        _upstream_app(args.secret),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
