"""The host I/O folder: where files cross between the operator's host and Caracal. On the host
it is `$CARACAL_HOME/host-io`; in the container stack the same folder is mounted at
`/caracal-host-io`. The restricted shell reads and writes files only inside it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from caracal.core.errors import ValidationError
from caracal.home.paths import caracal_home

IN_CONTAINER = Path("/caracal-host-io")


def host_io_folder() -> Path:
    if os.environ.get("CARACAL_RUNTIME_IN_CONTAINER") == "1":
        return IN_CONTAINER
    return caracal_home() / "host-io"


@dataclass(frozen=True)
class HostFolder:
    """File arguments confined to one folder, after `..` and symbolic links are resolved.
    Relative paths are taken from the folder."""

    root: Path

    def _inside(self, given: Path, resolved: Path) -> Path:
        root = self.root.resolve()
        if resolved != root and root not in resolved.parents:
            raise ValidationError(
                f"{given} is outside the host I/O folder {self.root}; here files are read "
                "and written only inside it."
            )
        return resolved

    def _candidate(self, given: Path) -> Path:
        return given.expanduser() if given.expanduser().is_absolute() else self.root / given

    def readable(self, given: Path) -> Path:
        """An existing file inside the folder."""
        try:
            resolved = self._candidate(given).resolve(strict=True)
        except (OSError, RuntimeError):
            resolved = self._candidate(given).resolve(strict=False)
            self._inside(given, resolved)
            raise ValidationError(f"{given} does not exist in the host I/O folder.") from None
        return self._inside(given, resolved)

    def writable(self, given: Path) -> Path:
        """A file to write inside the folder: its folder must exist; if it is a link, where
        it points must be inside too."""
        candidate = self._candidate(given)
        try:
            parent = candidate.parent.resolve(strict=True)
        except (OSError, RuntimeError):
            self._inside(given, candidate.parent.resolve(strict=False))
            raise ValidationError(f"The folder of {given} does not exist.") from None
        self._inside(given, parent)
        target = parent / candidate.name
        if candidate.name in ("", ".", ".."):
            raise ValidationError(f"{given} is a folder; give the name of a file to write.")
        return self._inside(given, target.resolve(strict=False))
