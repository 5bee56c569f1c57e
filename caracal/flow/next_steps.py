"""Next steps worded for Flow: the area and the key that does it, read from the bindings so
the words follow the keymap. Used where a service's notice names a CLI command."""

from __future__ import annotations

from collections.abc import Iterable

from caracal.flow.areas import BY_KEY


def _key(screen: str, binding_id: str) -> str:
    from importlib import import_module

    from textual.binding import Binding

    module = import_module(f"caracal.flow.screens.{screen}")
    for binding in getattr(module.SCREEN, "BINDINGS", []):
        if isinstance(binding, Binding) and binding.id == binding_id:
            return binding.key.split(",")[0]
    return "?"


def where(area: str) -> str:
    found = BY_KEY[area]
    return f"{found.title} ({found.digit})" if found.digit else found.title


def rotate_keys() -> str:
    return (
        f"rotate each principal's key in {where('principals')}: select it and press "
        f"{_key('principals', 'principal-rotate')}"
    )


def set_credentials() -> str:
    return (
        f"set provider credentials in {where('providers')}: select one and press "
        f"{_key('providers', 'provider-edit')}"
    )


def restore_notices(notices: Iterable[str]) -> list[str]:
    """A restore's notices, the one naming CLI commands replaced by the keys that do it here."""
    from caracal.services.backup.restore import NO_SECRETS_NOTICE

    flow_wording = (
        f"The archive holds no secrets: before the workspace can issue, {rotate_keys()}; "
        f"and {set_credentials()}."
    )
    return [flow_wording if notice == NO_SECRETS_NOTICE else notice for notice in notices]
