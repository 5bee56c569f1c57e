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
