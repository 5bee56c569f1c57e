"""Images for the stack: pulled when missing (with progress), or built from this checkout or
the installed distribution (a wheelhouse for the image's Python, then `docker build` with
progress), labelled so that `purge` finds exactly what the launcher built."""

from __future__ import annotations

import hashlib
import platform
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from caracal.core.errors import UnavailableError
from caracal.home.atomic import atomic_write_text
from caracal.launcher.compose_model import Service
from caracal.launcher.distribution import installation_digest, wheel_from_installation

if TYPE_CHECKING:
    from caracal.launcher.project import Project

OFFLINE_HINT = (
    "without a registry, build local images with containers/offline/build-images.sh and set "
    "CARACAL_BASE_IMAGE, CARACAL_POSTGRES_IMAGE and CARACAL_REDIS_IMAGE"
)


def ensure_images(launcher: Project, services: list[Service], *, build: bool) -> dict[str, str]:
    """Image reference -> image id, for every service given."""
    builders = {s.image: s for s in launcher.stack.services.values() if s.build is not None}
    ids: dict[str, str] = {}
    for service in services:
        if service.image in ids:
            continue
        builder = builders.get(service.image)
        present = _image_id(launcher, service.image)
        if builder is not None and (build or present is None):
            ids[service.image] = build_image(launcher, builder)
        elif present is not None:
            ids[service.image] = present
        else:
            ids[service.image] = pull(launcher, service.image)
    return ids


def _image_id(launcher: Project, ref: str) -> str | None:
    from docker.errors import ImageNotFound

    try:
        return str(launcher.client.images.get(ref).id)
    except ImageNotFound:
        return None


def pull(launcher: Project, ref: str) -> str:
    from docker.errors import APIError

    repository, _, tag = (
        ref.rpartition(":") if ":" in ref.rsplit("/", maxsplit=1)[-1] else (ref, "", "latest")
    )
    launcher.say(f"  pulling {ref}")
    launcher.watch.phase(f"pulling {ref}")
    done: set[str] = set()
    try:
        for event in launcher.client.api.pull(repository, tag=tag, stream=True, decode=True):
            if "error" in event:
                raise UnavailableError(f"Cannot pull {ref}: {event['error']}; {OFFLINE_HINT}.")
            layer, status = event.get("id"), event.get("status", "")
            if layer and status in ("Pull complete", "Already exists") and layer not in done:
                done.add(layer)
                launcher.say(f"    {ref}: {len(done)} layer(s) ready")
                launcher.watch.step(len(done), None, f"layer {layer}")
    except APIError as exc:
        raise UnavailableError(
            f"Cannot pull {ref}: {exc.explanation or exc}; {OFFLINE_HINT}."
        ) from None
    image_id = _image_id(launcher, ref)
    if image_id is None:
        raise UnavailableError(f"Cannot pull {ref}; {OFFLINE_HINT}.")
    return image_id


def build_image(launcher: Project, service: Service) -> str:
    assert service.build is not None
    spec = service.build
    base = spec.args.get("BASE_IMAGE")
    if base and _image_id(launcher, base) is None:
        pull(launcher, base)
    prepare_wheelhouse(launcher, spec.context, base)
    launcher.say(f"  building {service.image} from {spec.context / spec.dockerfile}")
    launcher.watch.phase(f"building {service.image}")
    labels = {
        "com.docker.compose.project": launcher.project,
        "com.docker.compose.service": service.name,
    }
    stream = launcher.client.api.build(
        path=str(spec.context),
        dockerfile=spec.dockerfile,
        tag=service.image,
        buildargs=spec.args,
        labels=labels,
        rm=True,
        forcerm=True,
        decode=True,
    )
    stages = _Stages()
    try:
        for event in stream:
            if "error" in event:
                raise UnavailableError(f"Building {service.image} failed: {event['error'].strip()}")
            line = str(event.get("stream", "")).strip()
            stages.read(line)
            if line.startswith("Step "):
                launcher.say(f"    {line}")
                step = _STEP.match(line)
                if step is not None:
                    launcher.watch.step(int(step[1]), int(step[2]), step[3])
    finally:
        _remove_untagged(launcher, stages.finished[:-1])
    image_id = _image_id(launcher, service.image)
    if image_id is None:
        raise UnavailableError(f"Building {service.image} produced no image.")
    return image_id


_STEP = re.compile(r"Step (\d+)/(\d+) : (.*)")
_FROM_STEP = re.compile(r"Step \d+/\d+ : FROM ", re.IGNORECASE)


class _Stages:
    """Follows the classic builder's output: the image each stage of a multi-stage build ends
    with. Every stage but the last is left behind untagged unless someone removes it."""

    def __init__(self) -> None:
        self.finished: list[str] = []
        self._current: str | None = None

    def read(self, line: str) -> None:
        if _FROM_STEP.match(line):
            if self._current is not None:
                self.finished.append(self._current)
            self._current = None
        elif line.startswith("---> ") and " " not in line[5:].strip():
            self._current = line[5:].strip()
        elif line.startswith("Successfully built ") and self._current is not None:
            self.finished.append(self._current)
            self._current = None


def _remove_untagged(launcher: Project, image_ids: list[str]) -> None:
    """Remove what a build left behind, never an image someone tagged or built on."""
    from docker.errors import APIError

    for image_id in image_ids:
        try:
            image = launcher.client.images.get(image_id)
            if not image.tags:
                launcher.client.images.remove(image.id, noprune=False)
        except APIError:
            continue


def _python_of(launcher: Project, image: str | None) -> str:
    if image is None:
        return ".".join(map(str, sys.version_info[:3]))
    output = launcher.client.containers.run(
        image,
        ["python3", "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
        remove=True,
        network_disabled=True,
    )
    return str(output.decode().strip())


def _source_digest(context: Path, python: str) -> str:
    """What the wheelhouse is made of: the checkout's sources, or the installed distribution."""
    digest = hashlib.sha256(python.encode())
    if not (context / "pyproject.toml").is_file():
        digest.update(installation_digest().encode())
        return digest.hexdigest()
    for path in sorted([context / "pyproject.toml", *(context / "caracal").rglob("*.py")]):
        digest.update(str(path.relative_to(context)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _caracal_wheel(context: Path, target: Path, pip: list[str]) -> Path:
    """The caracal wheel for the image: built from the checkout, or rebuilt from the installed
    distribution (`pipx install caracal` has no sources to build from)."""
    if (context / "pyproject.toml").is_file():
        _run([*pip, "wheel", "--no-deps", "--wheel-dir", str(target), str(context)])
        return next(target.glob("caracal-*.whl"))
    return wheel_from_installation(target)


def _dependencies(context: Path) -> list[str]:
    if (context / "pyproject.toml").is_file():
        project = tomllib.loads((context / "pyproject.toml").read_text())["project"]
        return list(project["dependencies"])
    return [r for r in (metadata.requires("caracal") or []) if "extra ==" not in r]


def prepare_wheelhouse(launcher: Project, context: Path, base_image: str | None) -> Path:
    """`build/wheels/` in the build context: the caracal wheel and every dependency, for the
    base image's Python. Reused while the sources and that Python are unchanged."""
    target = context / "build" / "wheels"
    python = _python_of(launcher, base_image)
    stamp = target / ".source-digest"
    digest = _source_digest(context, python)
    if stamp.exists() and stamp.read_text() == digest:
        launcher.say("  wheelhouse is up to date")
        return target
    launcher.say(f"  preparing wheels for Python {python}")
    launcher.watch.phase(f"preparing wheels for Python {python}")
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # Dependencies are chosen for the image's exact Python (markers such as
    # python_full_version < "3.11.3" differ between patch releases), not the host's.
    wheel = _caracal_wheel(context, target, pip)
    if python == ".".join(map(str, sys.version_info[:3])):
        _run([*pip, "wheel", "--wheel-dir", str(target), str(wheel)])
    else:
        deps = _dependencies(context)
        platforms = _platforms()
        _run(
            [
                *pip,
                "download",
                "--only-binary=:all:",
                "--python-version",
                python,
                "--implementation",
                "cp",
                *(a for p in platforms for a in ("--platform", p)),
                "--dest",
                str(target),
                *deps,
            ]
        )
    if base_image is not None:
        _complete(
            launcher,
            base_image,
            target,
            [
                *pip,
                "download",
                "--only-binary=:all:",
                "--no-deps",
                "--python-version",
                python,
                "--implementation",
                "cp",
                *(a for p in _platforms() for a in ("--platform", p)),
                "--dest",
                str(target),
            ],
        )
    atomic_write_text(stamp, digest)  # another `up` may be reading it
    return target


_MISSING = re.compile(r"No matching distribution found for ([^\n;]+)")


def _complete(launcher: Project, image: str, target: Path, download: list[str]) -> None:
    """pip evaluates environment markers with the host's interpreter, not the image's (redis
    needs async-timeout below Python 3.11.3, for one). Resolve the wheelhouse inside the base
    image, offline, and fetch what it reports missing, until it resolves."""
    from docker.errors import ContainerError

    for _ in range(10):
        try:
            launcher.client.containers.run(
                image,
                [
                    "sh",
                    "-c",
                    "python3 -m venv /tmp/v && /tmp/v/bin/pip install -q --dry-run "
                    "--no-index --find-links /w caracal",
                ],
                volumes={str(target): {"bind": "/w", "mode": "ro"}},
                remove=True,
                network_disabled=True,
            )
            return
        except ContainerError as exc:
            found = _MISSING.search((exc.stderr or b"").decode(errors="replace"))
            if found is None:
                raise UnavailableError(
                    f"The wheelhouse does not install in {image}: {exc.stderr!r:.300}"
                ) from None
            launcher.say(f"  adding {found.group(1).strip()} for the image's Python")
            _run([*download, found.group(1).strip()])
    raise UnavailableError(f"The wheelhouse still does not install in {image}.")


def _platforms() -> list[str]:
    machine = platform.machine()
    legacy = [f"{tag}_{machine}" for tag in ("manylinux1", "manylinux2010", "manylinux2014")]
    return legacy + [f"manylinux_2_{minor}_{machine}" for minor in range(5, 37)]


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise UnavailableError(f"Preparing the wheelhouse failed: {last}")
