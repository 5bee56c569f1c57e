#!/usr/bin/env bash
# The lowest allowed versions: install Caracal into a fresh virtualenv with every direct
# dependency at its floor (ci/lowest-constraints.txt, generated from pyproject.toml), check that
# the floors are what got installed, and run a smoke subset of the tests on them. A floor that
# is too low fails here instead of on a user's machine.
#
#     bash .ci/lowest-versions.sh
#
# Needs only python3 (3.11+) and PyPI; the virtualenv lives in a temporary folder and is
# removed afterwards. Run from .ci/run after the main suite (PostgreSQL and Redis up).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/caracal-lowest.XXXXXX")
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
py="$work/venv/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

# The floors come from pyproject.toml; a stale constraints file would test other versions.
python3 tools/lowest_constraints.py --check

# The project (not editable: the wheel a user gets) with its direct dependencies pinned to the
# floors; the test tools are not constrained (their own floors are not what is tested here).
# Transitive dependencies resolve to whatever the floors accept, as they would for a user.
"$py" -m pip install --quiet \
  -c ci/lowest-constraints.txt \
  "$root" \
  "pytest>=8" "pytest-asyncio>=0.23" "pytest-timeout>=2.3" "time-machine>=2.10"

# `pip freeze` shows every constrained distribution at exactly its floor.
"$py" -m pip freeze --exclude-editable >"$work/freeze.txt"
python3 - ci/lowest-constraints.txt "$work/freeze.txt" <<'PY'
import re
import sys

def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()

def release(version):
    return re.sub(r"(\.0)+$", "", version)

installed = {}
for line in open(sys.argv[2], encoding="utf-8"):
    if "==" in line:
        name, version = line.strip().split("==", 1)
        installed[canonical(name)] = version
wrong = []
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.split("#", 1)[0].split(";", 1)[0].strip()
    if line:
        name, floor = line.split("==")
        got = installed.get(canonical(name))
        if got is None or release(got) != release(floor):
            wrong.append(f"{name}: floor {floor}, installed {got or 'nothing'}")
if wrong:
    sys.exit("the floors were not installed:\n  " + "\n  ".join(wrong))
PY
echo "lowest versions installed: $(grep -v '^caracal' "$work/freeze.txt" | paste -sd' ')"

# The smoke subset, from a copy of the tests outside the checkout so the installed package is
# the one imported (not ./caracal). One of each: signing and validation of a mandate, the CLI
# on the embedded store (and PostgreSQL when it is up), Flow driven by Pilot, the runtime's
# /v1/authorize over HTTP, the upstream pool, help for every command, every module importable.
cp -r tests "$work/tests"
cp pyproject.toml "$work/pyproject.toml"
cd "$work"
unset CI
export PYTHONPATH="$work"
# Every module imports, Flow's screens included (the tests below import only what they use).
"$py" -c '
import importlib, pkgutil, caracal
for module in pkgutil.walk_packages(caracal.__path__, "caracal."):
    importlib.import_module(module.name)
'
# The Docker SDK at its floor talks to a real engine (.ci/run starts one and sets
# CARACAL_REQUIRE_DOCKER=1; elsewhere this is checked when an engine answers).
if [ "${CARACAL_REQUIRE_DOCKER:-}" = 1 ] || docker info >/dev/null 2>&1; then
  "$py" -c 'from caracal.launcher.engine import connect
print("docker engine", connect(timeout=30).version()["Version"], "answers the Docker SDK floor")'
fi
"$py" -m pytest -q -p no:cacheprovider --timeout 120 \
  "tests/authority/test_validation.py::test_allowed_decision_shape_and_exit_code" \
  "tests/authority/test_validation.py::test_unknown_key_and_bad_signature" \
  "tests/foundation/test_workspaces.py::test_duplicate_name_is_a_clear_conflict" \
  "tests/foundation/test_workspaces.py::test_real_process_exit_codes_and_clean_json" \
  "tests/foundation/test_import_hygiene.py::test_every_command_prints_its_help" \
  "tests/flow/test_onboarding.py::test_bad_workspace_name_is_explained_inline_and_nothing_is_created" \
  "tests/flow/test_mandates.py::test_validate_allowed_and_denied" \
  "tests/flow/test_navigation.py::test_help_lists_every_binding_and_escape_goes_back" \
  "tests/flow/test_settings.py::test_theme_and_confirmation_are_applied_and_saved_to_flow_state" \
  "tests/runtime/test_authorize.py::test_an_allowed_decision_is_answered_and_recorded" \
  "tests/runtime/test_authorize.py::test_a_denial_is_403_with_its_reason_and_recorded" \
  "tests/runtime/test_authorize.py::test_health_never_echoes_configuration_and_honours_the_configured_redis_password" \
  "tests/runtime/test_mcp_upstream.py" \
  "tests/launcher/test_no_engine.py::test_doctor_reports_the_missing_engine_with_a_next_step"
echo "lowest versions: smoke subset passed"
