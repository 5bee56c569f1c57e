"""A small HTTP/1.1 load generator, run as its own process: N keep-alive connections, each
sending one POST after another, for a fixed time (each finishes the request it has in flight,
so the count is exact). Prints JSON figures, the answers that were allowed among them.

    python -m bench.loadgen --port P --path /v1/authorize --body JSON [--connections 16]
        [--header NAME:VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time


async def _connection(
    port: int, request: bytes, stop: float, latencies: list[float], counts: dict[str, int]
) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        counts["socket_errors"] += 1
        return
    try:
        while time.perf_counter() < stop:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length) if length else b""
            latencies.append(time.perf_counter() - started)
            if status >= 300:
                counts["non_2xx"] += 1
            elif body.startswith(b'{"allowed":true'):
                counts["allowed"] += 1
    except (OSError, asyncio.IncompleteReadError):
        counts["socket_errors"] += 1
    finally:
        writer.close()


async def _main(args: argparse.Namespace) -> dict[str, float]:
    body = args.body.encode()
    extra = "".join(f"{name.strip()}: {value.strip()}\r\n" for name, value in args.header)
    request = (
        f"POST {args.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{extra}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    counts = {"non_2xx": 0, "socket_errors": 0, "allowed": 0}
    started = time.perf_counter()
    stop = started + args.seconds
    await asyncio.gather(
        *(_connection(args.port, request, stop, latencies, counts) for _ in range(args.connections))
    )
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000 if latencies else 0.0
        )

    return {
        "requests": float(len(latencies)),
        "non_2xx": float(counts["non_2xx"]),
        "allowed": float(counts["allowed"]),
        # Each connection finishes its request before it stops: nothing is left in flight.
        "in_flight_at_end": 0.0,
        "socket_errors": float(counts["socket_errors"]),
        "rate": len(latencies) / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    }


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip() or any(c in text for c in "\r\n"):
        raise argparse.ArgumentTypeError(f"expected NAME:VALUE, got {text!r}")
    return name, value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/")
    parser.add_argument("--body", default="{}")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        type=_header,
        metavar="NAME:VALUE",
        help="an extra request header (repeatable)",
    )
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(_main(args))))


if __name__ == "__main__":
    main()
