"""Files one process writes and another reads while it runs."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_atomically(path: Path, text: str) -> None:
    """Readers polling for `path` see nothing or the whole text, never a part of it: the text
    is written beside the file and renamed over it."""
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    partial.write_text(text)
    os.replace(partial, path)
