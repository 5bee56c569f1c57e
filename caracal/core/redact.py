"""Secrets out of anything shown: the password of a URL (`user:PASSWORD@host`, and query
parameters such as `?password=`), wherever a URL appears in a value."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "********"
# A value sealed by the vault, as config.yaml holds it: ENC[base64].
ENC_PREFIX = "ENC["
ENC_SUFFIX = "]"


def is_encrypted_value(value: object) -> bool:
    return isinstance(value, str) and value.startswith(ENC_PREFIX) and value.endswith(ENC_SUFFIX)


# Query parameters that carry credentials in database, cache and HTTP URLs.
_SECRET_PARAM = re.compile(r"pass|pwd|secret|token|key|auth|credential|sig", re.IGNORECASE)


def mask_url(url: str) -> str:
    """The URL with its password and credential-like query values replaced by MASK. A URL
    that cannot be parsed is masked whole."""
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return MASK
    if not url_has_secret(url) and parts.password is None:
        return url  # nothing to hide: as given (urlunsplit would respell some URLs)
    netloc = parts.netloc
    if parts.password is not None:
        host = netloc.rpartition("@")[2]
        user = parts.username or ""
        netloc = f"{user}:{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_PARAM.search(name) for name, _ in pairs):
            query = urlencode(
                [(n, MASK if _SECRET_PARAM.search(n) else v) for n, v in pairs], safe="*"
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_urls(value: Any) -> Any:
    """Every URL inside a value (strings, lists, mappings) masked."""
    if isinstance(value, str):
        return mask_url(value) if "://" in value else value
    if isinstance(value, list):
        return [mask_urls(v) for v in value]
    if isinstance(value, dict):
        return {k: mask_urls(v) for k, v in value.items()}
    return value


def url_has_secret(url: str) -> bool:
    """Whether the URL carries a (non-empty) password or credential-like query value."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return True
    if parts.password:
        return True
    return any(
        value and _SECRET_PARAM.search(name)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    )
