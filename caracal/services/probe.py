"""`provider test`: one GET of the health path with the auth header applied, no redirects."""

from __future__ import annotations

import base64
import http.client
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from caracal.core.providers import ProviderSpec


@dataclass(frozen=True)
class ProbeResult:
    healthy: bool
    status: int | None
    latency_ms: float
    detail: str

    def to_dict(self) -> dict[str, object]:
        return {
            "healthy": self.healthy,
            "status": self.status,
            "latency_ms": round(self.latency_ms, 1),
            "detail": self.detail,
        }


def auth_headers(spec: ProviderSpec, credential: str | None) -> dict[str, str]:
    name = spec.auth_header_name()
    if name is None or credential is None:
        return {}
    if spec.auth == "bearer":
        return {name: f"Bearer {credential}"}
    if spec.auth == "basic":
        return {name: "Basic " + base64.b64encode(credential.encode()).decode()}
    return {name: credential}


def auth_query(spec: ProviderSpec, credential: str | None) -> dict[str, str]:
    """The credential as a query parameter, for the `api-key-query` scheme."""
    name = spec.auth_query_name()
    if name is None or credential is None:
        return {}
    return {name: credential}


def probe(spec: ProviderSpec, credential: str | None, timeout: float = 5.0) -> ProbeResult:
    url = urlsplit(spec.base_url)
    path = url.path.rstrip("/") + spec.health_path
    query = auth_query(spec, credential)
    if query:
        path += "?" + urlencode(query)
    conn: http.client.HTTPConnection
    if url.scheme == "https":
        conn = http.client.HTTPSConnection(
            url.hostname or "", url.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=timeout)
    started = time.perf_counter()
    try:
        conn.request(
            "GET", path, headers={"User-Agent": "caracal-probe", **auth_headers(spec, credential)}
        )
        response = conn.getresponse()
        response.read(65536)
        elapsed = (time.perf_counter() - started) * 1000
    except TimeoutError:
        return ProbeResult(False, None, timeout * 1000, f"no answer within {timeout:g}s")
    except ssl.SSLError as exc:
        return ProbeResult(False, None, 0.0, f"TLS failed: {exc.reason or exc}")
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        return ProbeResult(False, None, 0.0, f"unreachable: {reason}")
    except http.client.HTTPException as exc:
        return ProbeResult(False, None, 0.0, f"bad HTTP response: {exc or type(exc).__name__}")
    finally:
        conn.close()
    status = response.status
    if 200 <= status < 300:
        return ProbeResult(True, status, elapsed, f"HTTP {status} {response.reason}")
    if status in (401, 403):
        detail = f"HTTP {status} {response.reason}: the credential was rejected"
    elif 300 <= status < 400:
        detail = f"HTTP {status} redirect to {response.getheader('Location')!r} (not followed)"
    else:
        detail = f"HTTP {status} {response.reason}"
    return ProbeResult(False, status, elapsed, detail)
