"""How Flow writes things for people to read."""

from __future__ import annotations

from pathlib import Path


def display_path(path: Path | str) -> str:
    """A path as a person would type it: under the home folder, `~/...`."""
    text = str(path)
    try:
        home = str(Path.home())
    except RuntimeError:  # no home folder can be found
        return text
    if home not in ("", "/") and (text == home or text.startswith(home.rstrip("/") + "/")):
        return "~" + text[len(home.rstrip("/")) :]
    return text


def middle_ellipsis(text: str, width: int) -> str:
    """`text` in at most `width` characters, cut in the middle so that both ends (a name's
    family and its number, `orchestr…worker-17`) stay readable."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    keep = width - 1
    head = keep // 2
    return f"{text[:head]}…{text[len(text) - (keep - head) :]}"


def names_for_ids(text: str, names: dict[str, str], width: int = 24) -> str:
    """Principal ids in a message replaced by their names (middle-ellipsed to `width`)."""
    for ident, name in names.items():
        if ident in text:
            text = text.replace(ident, middle_ellipsis(name, width))
    return text


_WORDS = {"mcp": "MCP", "url": "URL", "pg": "PostgreSQL", "redis": "Redis", "id": "ID"}
_UNITS = {"seconds": "(s)", "ms": "(ms)", "bytes": "(bytes)"}


def setting_label(key: str) -> str:
    """A config key as a label: `runtime.mcp.call_timeout_seconds` → `Runtime MCP: call
    timeout (s)`."""
    parts = key.split(".")

    def words(part: str) -> list[str]:
        return [_UNITS.get(w, _WORDS.get(w, w)) for w in part.split("_")]

    last = " ".join(words(parts[-1]))
    if len(parts) == 1:
        return last[:1].upper() + last[1:]
    section = " ".join(" ".join(words(p)) for p in parts[:-1])
    return f"{section[:1].upper() + section[1:]}: {last}"
