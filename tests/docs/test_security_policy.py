"""SECURITY.md tells a reporter where to go and what to expect, and the docs point there."""

from __future__ import annotations

from tests.docs.sessions import DOCS

POLICY = (DOCS.parent / "SECURITY.md").read_text()


def test_the_policy_says_how_to_report_privately_and_what_to_expect() -> None:
    for heading in ("## Supported versions", "## Reporting a vulnerability"):
        assert heading in POLICY
    assert "Security → Report a vulnerability" in POLICY
    for promise in ("What to include", "What to expect", "acknowledgement within"):
        assert promise in POLICY


def test_the_docs_send_reporters_to_the_private_channel() -> None:
    page = (DOCS / "security.md").read_text()
    assert "Security → Report a vulnerability" in page
    assert "privately" in page
