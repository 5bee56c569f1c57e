"""Caracal: authority, not credentials, for AI agents."""

__version__ = "0.1.0"

import logging as _logging

# Library convention: no output unless a front end attaches the workspace log.
_logging.getLogger("caracal").addHandler(_logging.NullHandler())
