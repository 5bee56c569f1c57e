"""Every key has one meaning: moving keys only move, and an action key means the same in
every area. Read from the bindings, so a new binding that breaks this fails here."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import pytest
from textual.binding import Binding
from textual.screen import Screen

import caracal.flow.modals
import caracal.flow.screens
import caracal.flow.widgets
from caracal.flow.app import FlowApp
from caracal.flow.areas import AREAS
from caracal.flow.keymap import MEANINGS, MOVING_ACTIONS, NAVIGATION_KEYS, area_bindings
from caracal.flow.screens.base import AreaScreen
from tests.flow.conftest import SIZE, screen_name, until


def keys(binding: Binding) -> list[str]:
    return [k.strip() for k in binding.key.split(",")]


def every_bound_class() -> list[type[Any]]:
    found: list[type[Any]] = [FlowApp]
    for package in (caracal.flow.screens, caracal.flow.modals, caracal.flow.widgets):
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            for value in vars(module).values():
                if (
                    isinstance(value, type)
                    and value.__module__ == module.__name__
                    and "BINDINGS" in vars(value)
                ):
                    found.append(value)
    return found


def test_navigation_keys_only_move_everywhere() -> None:
    wrong = [
        f"{cls.__name__}: {key} -> {binding.action}"
        for cls in every_bound_class()
        for binding in cls.BINDINGS
        if isinstance(binding, Binding)
        for key in keys(binding)
        if key in NAVIGATION_KEYS and not binding.action.startswith(MOVING_ACTIONS)
    ]
    assert wrong == []


def test_each_action_key_has_one_meaning_across_the_areas() -> None:
    shared = {k for b in [*FlowApp.BINDINGS, *AreaScreen.BINDINGS] for k in keys(b)}
    problems = []
    for area in AREAS:
        for binding in area_bindings(area.key):
            for key in keys(binding):
                if key in shared:
                    problems.append(f"{area.key}: {key} is already a key of every area")
                elif key not in MEANINGS:
                    problems.append(f"{area.key}: {key} ({binding.id}) has no meaning listed")
                elif binding.id not in MEANINGS[key].binding_ids:
                    problems.append(
                        f"{area.key}: {key} ({binding.id}) is not '{MEANINGS[key].what}'"
                    )
    assert problems == []


@pytest.mark.parametrize("area", [a for a in AREAS if a.digit])
def test_no_area_binds_the_same_key_twice(area: Any) -> None:
    seen: dict[str, str] = {}
    module = importlib.import_module(f"caracal.flow.screens.{area.key}")
    screen: type[Screen[None]] = module.SCREEN
    for binding in [*FlowApp.BINDINGS, *screen.BINDINGS]:
        if not isinstance(binding, Binding):
            continue
        for key in keys(binding):
            assert seen.get(key, binding.action) == binding.action, (area.key, key)
            seen[key] = binding.action


async def test_k_moves_up_on_principals_and_never_opens_a_dialog(
    world: dict[str, str], app_factory: Any
) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await pilot.press("4")
        await until(pilot, lambda: app.screen.query_one("#principals").row_count == 4)
        table = app.screen.query_one("#principals")
        await pilot.press("j", "j")
        await until(pilot, lambda: table.cursor_row == 2)
        await pilot.press("k")
        await until(pilot, lambda: table.cursor_row == 1)
        await pilot.press("G")
        await until(pilot, lambda: table.cursor_row == 3)
        await pilot.press("g")
        await until(pilot, lambda: table.cursor_row == 0)
        assert screen_name(app) == "PrincipalsScreen"
        await pilot.press("R")
        await until(pilot, lambda: screen_name(app) == "RotateKeyModal")


def test_the_documented_keymap_is_the_bindings() -> None:
    """docs/enter.md's key table is generated from the bindings when the site is built, by the
    same function `?` in Flow reads."""
    import importlib.util
    from pathlib import Path

    from caracal.flow.keymap import markdown_table

    root = Path(__file__).resolve().parents[2]
    assert "<!-- generated: flow-keymap -->" in (root / "docs" / "enter.md").read_text()
    spec = importlib.util.spec_from_file_location("hook", root / "docs" / "hooks" / "generated.py")
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    assert hook.keymap() == markdown_table()
