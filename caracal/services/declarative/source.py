"""Reading a declarative file: YAML with the line and column of every node, so that every
problem in the file (syntax, shape, secrets, references) is reported at once, each with its
position."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic import ValidationError as ModelError

from caracal.core.durations import parse_duration
from caracal.core.errors import CaracalError, NotFoundError, ValidationError
from caracal.core.names import check_identifier
from caracal.core.providers import spec_from_dict, validate_spec
from caracal.core.workspace_state import (
    PolicyEntry,
    PrincipalEntry,
    ProviderEntry,
    ToolEntry,
    WorkspaceState,
)
from caracal.services.declarative.settings import unknown
from caracal.services.principals import PrincipalService

Path_ = tuple[str | int, ...]
MAX_BYTES = 4 * 1024 * 1024
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Keys that would hold a secret: the file carries references only.
_SECRET_KEYS = frozenset(
    {"credential", "password", "secret", "token", "api_key", "apikey", "private_key"}
)
# Values shaped like a credential, a key or a signed token, wherever they appear.
_SECRET_VALUE = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----|\bgh[pousr]_[A-Za-z0-9]{16,}|\bgithub_pat_\w{20,}"
    r"|\bsk-[A-Za-z0-9_-]{16,}|\bxox[abprs]-[A-Za-z0-9-]{10,}|\bAKIA[0-9A-Z]{16}\b"
    r"|\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}|^(Bearer|Basic) \S{8,}$|ENC\[",
)
_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]+@", re.IGNORECASE)


@dataclass(frozen=True)
class Problem:
    line: int
    column: int
    message: str


class FileProblems(ValidationError):
    """Every problem found in one file; the message names each with file:line:column."""

    def __init__(self, name: str, problems: list[Problem]) -> None:
        problems = sorted(problems, key=lambda p: (p.line, p.column, p.message))
        self.problems = problems
        lines = [f"{name}:{p.line}:{p.column}: {p.message}" for p in problems]
        noun, them = ("problem", "it") if len(problems) == 1 else ("problems", "them")
        super().__init__(
            f"{name} has {len(problems)} {noun}; fix {them} and run `caracal plan` again:\n"
            + "\n".join(lines)
        )


@dataclass(frozen=True)
class DeclaredFile:
    """A valid file: its state, its text and the SHA-256 of its bytes."""

    name: str
    text: str
    sha256: str
    state: WorkspaceState


class _Loader(yaml.SafeLoader):
    """No aliases: a reviewed file says everything where it applies."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(None, None, "aliases are not allowed", mark)
        return super().compose_node(parent, index)


def read_file(path: Path) -> DeclaredFile:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise NotFoundError(f"Cannot read {path}: {exc.strerror}; check the path.") from None
    if len(data) > MAX_BYTES:
        raise ValidationError(f"{path} is larger than {MAX_BYTES // 1024 // 1024} MiB.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"{path} is not UTF-8 text.") from None
    return parse_text(text, str(path))


def parse_text(text: str, name: str) -> DeclaredFile:
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise FileProblems(
            name, [Problem(line, column, f"not valid YAML: {exc.problem}")]
        ) from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise FileProblems(name, [Problem(1, 1, f"not valid YAML: {exc}")]) from None
    walk = _Plain()
    positions, problems = walk.positions, walk.problems
    try:
        raw = walk(node) if node is not None else {}
    except RecursionError:
        raise FileProblems(name, [Problem(1, 1, "the file is nested too deeply")]) from None
    if not isinstance(raw, dict):
        raise FileProblems(name, [Problem(1, 1, "the file must hold a mapping (version: 1, ...)")])

    def at(path: Path_, message: str) -> None:
        while path and path not in positions:
            path = path[:-1]
        line, column = positions.get(path, (1, 1))
        problems.append(Problem(line, column, message))

    for path, key, value in _walk(raw, ()):
        if key.lower() in _SECRET_KEYS:
            at(
                path,
                f"{key!r} would hold a secret; the file carries references only "
                "(credential_env: VARIABLE_NAME)",
            )
        elif isinstance(value, str) and (_SECRET_VALUE.search(value) or _URL_PASSWORD.match(value)):
            at(path, f"{key!r} holds what looks like a secret; keep secrets out of the file")
    entries = _entries(raw, at)
    _check_rules(entries, _raw_names(raw), at)
    if problems:
        raise FileProblems(name, problems)
    try:
        state = WorkspaceState.model_validate(raw)
    except ModelError as exc:  # every entry passed on its own: only the whole can fail here
        raise FileProblems(name, [Problem(1, 1, str(exc).splitlines()[0])]) from None
    return DeclaredFile(name, text, sha, state)


_SECTIONS: dict[str, type[BaseModel]] = {
    "providers": ProviderEntry,
    "principals": PrincipalEntry,
    "policies": PolicyEntry,
    "tools": ToolEntry,
}
Entries = dict[str, list[tuple[int, Any]]]


def _entries(raw: dict[str, Any], at: Any) -> Entries:
    """Each entry checked on its own, so one bad entry hides no problem in another; returns
    the valid ones with their index in the file."""
    for key in raw:
        if key not in _SECTIONS and key not in ("version", "settings"):
            at((key,), f"unknown key {key!r}; see `caracal export --schema` for the keys")
    if raw.get("version") != 1:
        at(("version",), "version must be 1 (the format this Caracal reads)")
    _check_settings(raw.get("settings", {}), at)
    out: Entries = {}
    for section, model in _SECTIONS.items():
        items = raw.get(section, [])
        out[section] = []
        if not isinstance(items, list):
            at((section,), f"{section} must be a list")
            continue
        for i, item in enumerate(items):
            try:
                out[section].append((i, model.model_validate(item)))
            except ModelError as exc:
                for error in exc.errors():
                    loc = (section, i, *error["loc"])
                    at(loc, _model_message(loc, error))
    return out


def _check_settings(settings: Any, at: Any) -> None:
    if not isinstance(settings, dict):
        at(("settings",), "settings must be a mapping of dotted keys to values")
        return
    for key, value in settings.items():
        why = unknown(key)
        if why is not None:
            at(("settings", key), why)
        elif not isinstance(value, int | float | str) or isinstance(value, bool):
            at(("settings", key), f"setting {key!r} takes a number or a word")


def _raw_names(raw: dict[str, Any]) -> dict[str, set[str]]:
    """Names the file declares, valid entries or not (a reference to a broken entry is not a
    second problem)."""
    out: dict[str, set[str]] = {}
    for section in ("providers", "principals"):
        items = raw.get(section)
        out[section] = {
            item["name"]
            for item in (items if isinstance(items, list) else [])
            if isinstance(item, dict) and isinstance(item.get("name"), str)
        }
    return out


def _model_message(loc: Path_, error: Any) -> str:
    where = ".".join(str(part) for part in loc) or "the file"
    if error["type"] == "extra_forbidden":
        return f"unknown key {loc[-1]!r}; see `caracal export --schema` for the keys"
    if error["type"] == "missing":
        return f"{where} is missing"
    return f"{where}: {error['msg']}"


class _Plain:
    """A composed YAML tree as plain data, remembering where each key and item is."""

    def __init__(self) -> None:
        self.positions: dict[Path_, tuple[int, int]] = {}
        self.problems: list[Problem] = []
        self._scalars = _Loader("")

    def __call__(self, node: yaml.Node, path: Path_ = ()) -> Any:
        return _plain(node, path, self.positions, self.problems, self._scalars)


def _plain(
    node: yaml.Node,
    path: Path_,
    positions: dict[Path_, tuple[int, int]],
    problems: list[Problem],
    scalars: _Loader,
) -> Any:
    positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str) or key in out:
                mark = key_node.start_mark
                what = "a repeated key" if key in out else "a key that is not text"
                problems.append(Problem(mark.line + 1, mark.column + 1, f"{what} ({key!r})"))
                continue
            positions[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _plain(value_node, (*path, key), positions, problems, scalars)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _plain(item, (*path, i), positions, problems, scalars)
            for i, item in enumerate(node.value)
        ]
    return scalars.construct_object(node)  # a scalar: its YAML type


def _walk(value: Any, path: Path_) -> Iterator[tuple[Path_, str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key), key, item
            yield from _walk(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, (*path, i))


def _check_rules(entries: Entries, names: dict[str, set[str]], at: Any) -> None:
    """The rules one entry or the file as a whole must keep (the store's own rules run again
    when the plan is applied)."""
    providers = {p.name: p for _, p in entries["providers"]}
    principals = {p.name: p for _, p in entries["principals"]}
    _unique(entries["providers"], "providers", "provider", at)
    _unique(entries["principals"], "principals", "principal", at)
    _unique(entries["tools"], "tools", "tool", at)
    for i, provider in entries["providers"]:
        _check_provider(i, provider, at)
    for i, principal in entries["principals"]:
        _check(
            at,
            ("principals", i),
            lambda p=principal: PrincipalService.check_registration(p.kind, p.name, p.email),
        )
    seen_policy: set[str] = set()
    for i, policy in entries["policies"]:
        target = principals.get(policy.principal)
        if policy.principal not in names["principals"]:
            at(
                ("policies", i, "principal"),
                f"principal {policy.principal!r} is not in the file's principals",
            )
        elif target is not None and target.status == "revoked":
            at(
                ("policies", i, "principal"),
                f"{policy.principal} is revoked; it cannot hold a policy",
            )
        if policy.principal in seen_policy:
            at(("policies", i, "principal"), f"{policy.principal} has a second policy; keep one")
        seen_policy.add(policy.principal)
        _check(at, ("policies", i, "max_validity"), lambda v=policy.max_validity: parse_duration(v))
    for i, tool in entries["tools"]:
        _check(at, ("tools", i, "name"), lambda n=tool.name: check_identifier(n, "tool name"))
        server = providers.get(tool.server)
        if tool.server not in names["providers"]:
            at(("tools", i, "server"), f"provider {tool.server!r} is not in the file's providers")
        elif server is not None and server.service_type != "mcp":
            at(
                ("tools", i, "server"),
                f"provider {tool.server!r} is not an MCP server (service_type: mcp)",
            )


def _check_provider(i: int, provider: ProviderEntry, at: Any) -> None:
    data = provider.model_dump(exclude={"credential_env"})
    _check(
        at,
        ("providers", i),
        lambda: validate_spec(spec_from_dict(data), has_credential=data["auth"] != "none"),
    )
    env = provider.credential_env
    if provider.auth == "none" and env is not None:
        at(("providers", i, "credential_env"), "auth 'none' takes no credential_env")
    if env is not None and not _ENV_NAME.fullmatch(env):
        at(
            ("providers", i, "credential_env"),
            "credential_env must name an environment variable (letters, digits, _)",
        )


def _unique(entries: list[tuple[int, Any]], section: str, what: str, at: Any) -> None:
    seen: set[str] = set()
    for i, entry in entries:
        if entry.name in seen:
            at((section, i, "name"), f"{what} {entry.name!r} is listed twice")
        seen.add(entry.name)


def _check(at: Any, path: Path_, rule: Any) -> None:
    try:
        rule()
    except CaracalError as exc:
        at(path, exc.message.rstrip("."))
