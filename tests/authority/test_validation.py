"""Every validation denial reason code, triggered through the public CLI or facade."""

from __future__ import annotations

import json
import time
from pathlib import Path

import time_machine

from caracal.cli.exit_codes import ExitCode
from caracal.core import jws
from caracal.core.keys import b64url, b64url_decode, generate_key_pair, load_private
from caracal.core.reasons import VALIDATION_DENIALS
from caracal.core.validation import Decision
from caracal.services.facade import Caracal
from tests.authority.conftest import COMMENT, ISSUES, READ, REPOS, WRITE, World, ok
from tests.support.asserted import codes_asserted
from tests.support.cli import run_cli


def denied(result, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert result.code == ExitCode.DENIED, result
    data = result.json()
    assert data["allowed"] is False and data["reason_code"] == code, data
    assert set(data) == {"allowed", "reason_code", "reason", "mandate_id"}
    return data


def denied_decision(decision: Decision, code: str) -> None:
    """The same, for a decision taken through the facade or the validator directly."""
    assert not decision.allowed and decision.reason_code == code, decision


def _tamper_segment(token: str, index: int, mutate) -> str:  # type: ignore[no-untyped-def]
    parts = token.split(".")
    mutated = mutate(json.loads(b64url_decode(parts[index])))
    parts[index] = b64url(json.dumps(mutated, separators=(",", ":")).encode())
    return ".".join(parts)


def _resign(
    token: str,
    header: dict | None = None,
    claims_text: bytes | None = None,
    *,
    kid: str | None = None,
) -> str:
    """Re-sign modified header/claims with the issuer's real key (as a key thief would)."""
    parsed = jws.decode(token)
    with Caracal.open() as app, app.store.read() as conn:
        from caracal.store import principal_rows

        principal_id = parsed.claims["iss"]
        _kid, ref = principal_rows.active_key(conn, principal_id)
        private = load_private(app.vault.get(conn, ref))
    from caracal.core.keys import sign

    h = header or parsed.header
    if kid is not None:
        h = {**h, "kid": kid}
    first = b64url(json.dumps(h, separators=(",", ":")).encode())
    second = b64url(claims_text) if claims_text is not None else token.split(".")[1]
    signing_input = f"{first}.{second}"
    return signing_input + "." + b64url(sign(private, signing_input.encode()))


def test_allowed_decision_shape_and_exit_code(world: World) -> None:
    mandate = ok(world.issue("alice", "orch")).json()
    result = world.validate(mandate["id"])
    assert result.code == 0
    assert result.json() == {
        "allowed": True,
        "reason_code": "ALLOWED",
        "reason": "allowed",
        "mandate_id": mandate["id"],
    }
    by_token = world.validate_token(mandate["token"], WRITE)
    assert by_token.code == 0 and by_token.json()["mandate_id"] == mandate["id"]


def test_token_missing_and_malformed(world: World) -> None:
    with Caracal.open() as app:
        decision = app.validation.validate(READ, REPOS, token="")
    denied_decision(decision, "TOKEN_MISSING")
    for bad in ["abc", "a.b", "a.b.c", "!!!.###.$$$", "x" * 20_000]:
        denied(world.validate_token(bad), "TOKEN_MALFORMED")


def test_duplicate_keys_nan_and_wrong_types_are_malformed_even_when_signed(world: World) -> None:
    token = ok(world.issue("alice", "orch")).json()["token"]
    claims_text = b64url_decode(token.split(".")[1]).decode()
    # A duplicate "act" key: Python's json.loads would silently keep the last one.
    duplicated = claims_text[:-1] + ',"act":["provider:github:action:comment"]}'
    denied(
        world.validate_token(_resign(token, claims_text=duplicated.encode()), COMMENT),
        "TOKEN_MALFORMED",
    )
    with_nan = claims_text.replace('"dep":0', '"dep":NaN')
    denied(world.validate_token(_resign(token, claims_text=with_nan.encode())), "TOKEN_MALFORMED")
    string_exp = json.loads(claims_text)
    string_exp["exp"] = str(string_exp["exp"])
    denied(
        world.validate_token(_resign(token, claims_text=json.dumps(string_exp).encode())),
        "TOKEN_MALFORMED",
    )
    extra = json.loads(claims_text)
    extra["admin"] = True
    denied(
        world.validate_token(_resign(token, claims_text=json.dumps(extra).encode())),
        "TOKEN_MALFORMED",
    )


def test_algorithm_and_critical_headers(world: World) -> None:
    token = ok(world.issue("alice", "orch")).json()["token"]
    header = jws.decode(token).header
    denied(
        world.validate_token(_tamper_segment(token, 0, lambda h: {**h, "alg": "none"})),
        "ALGORITHM_UNSUPPORTED",
    )
    denied(
        world.validate_token(_tamper_segment(token, 0, lambda h: {**h, "alg": "HS256"})),
        "ALGORITHM_UNSUPPORTED",
    )
    crit = _resign(token, header={**header, "crit": ["exp2"], "exp2": 1})
    denied(world.validate_token(crit), "CRITICAL_HEADER_UNSUPPORTED")


def test_token_from_another_workspace(world: World, home: Path) -> None:
    token = ok(world.issue("alice", "orch")).json()["token"]
    ok(run_cli("workspace", "create", "other"))
    result = run_cli(
        "-w",
        "other",
        "mandate",
        "validate",
        "--token",
        token,
        "--action",
        READ,
        "--resource",
        REPOS,
        "--json",
    )
    data = denied(result, "WORKSPACE_MISMATCH")
    assert data["mandate_id"] is None  # unverified claims are never reported as a mandate id


def test_unknown_key_and_bad_signature(world: World) -> None:
    token = ok(world.issue("alice", "orch")).json()["token"]
    denied(
        world.validate_token(
            _tamper_segment(token, 0, lambda h: {**h, "kid": "k_0000000000000000"})
        ),
        "KEY_UNKNOWN",
    )
    # A token signed by a key this workspace never saw, claiming the same kid.
    pair = generate_key_pair()
    forged = jws.encode(
        jws.decode(token).claims, jws.decode(token).kid, load_private(pair.private_der)
    )
    denied(world.validate_token(forged), "SIGNATURE_INVALID")
    head, body, sig = token.split(".")
    raw = bytearray(b64url_decode(sig))
    raw[5] ^= 0x01
    denied(world.validate_token(f"{head}.{body}.{b64url(bytes(raw))}"), "SIGNATURE_INVALID")
    # Widening the scope without re-signing breaks the signature.
    widened = _tamper_segment(
        token,
        1,
        lambda c: {
            **c,
            "act": [*c["act"], COMMENT],
            "grt": [*c["grt"], [0, len(c["act"])]],
        },
    )
    denied(world.validate_token(widened, COMMENT), "SIGNATURE_INVALID")


def test_unknown_mandate(world: World) -> None:
    denied(world.validate("mnd_00000000000000000000"), "MANDATE_UNKNOWN")
    token = ok(world.issue("alice", "orch")).json()["token"]
    # Validly signed by the issuer's key, but never issued through Caracal.
    claims = json.loads(b64url_decode(token.split(".")[1]))
    claims["jti"] = "mnd_ffffffffffffffffffff"
    forged = _resign(token, claims_text=json.dumps(claims, separators=(",", ":")).encode())
    data = denied(world.validate_token(forged), "MANDATE_UNKNOWN")
    assert data["mandate_id"] is None


def test_revoked(world: World) -> None:
    mandate = ok(world.issue("alice", "orch")).json()["id"]
    ok(run_cli("mandate", "revoke", mandate, "--yes"))
    denied(world.validate(mandate), "MANDATE_REVOKED")


def test_not_yet_valid_and_expired(world: World) -> None:
    ok(run_cli("config", "set", "validation.clock_leeway_seconds", "0"))
    pending = ok(world.issue("alice", "orch", extra=("--starts-in", "10m"))).json()
    denied(world.validate(pending["id"]), "MANDATE_NOT_YET_VALID")
    short = ok(world.issue("alice", "orch", ttl="1s")).json()
    with time_machine.travel(short["expires_at"], tick=False):  # the exact second it expires
        denied(world.validate(short["id"]), "MANDATE_EXPIRED")


def test_clock_leeway_is_respected_exactly(world: World) -> None:
    mandate = ok(world.issue("alice", "orch", ttl="10m")).json()
    expires = mandate["expires_at"]
    ok(run_cli("config", "set", "validation.clock_leeway_seconds", "30"))

    def decide(at: float) -> str:
        with Caracal.open(clock=lambda: at) as app:
            return app.validation.validate(READ, REPOS, mandate_id=mandate["id"]).reason_code

    assert decide(expires + 29.9) == "ALLOWED"
    assert decide(expires + 30) == "MANDATE_EXPIRED"
    assert decide(mandate["not_before"] - 30) == "ALLOWED"
    assert decide(mandate["not_before"] - 30.1) == "MANDATE_NOT_YET_VALID"


def test_inactive_issuer_and_subject(world: World) -> None:
    mandate = ok(world.issue("alice", "orch")).json()["id"]
    ok(run_cli("principal", "suspend", "alice", "--yes"))
    denied(world.validate(mandate), "ISSUER_INACTIVE")
    ok(run_cli("principal", "activate", "alice"))
    assert world.validate(mandate).code == 0
    ok(run_cli("principal", "suspend", "orch", "--yes"))
    denied(world.validate(mandate), "SUBJECT_INACTIVE")


def test_caller_must_be_the_subject(world: World) -> None:
    mandate = ok(world.issue("alice", "orch")).json()["id"]
    assert world.validate(mandate, READ, REPOS, "--caller", "orch").code == 0
    assert world.validate(mandate, READ, REPOS, "--caller", world.ids["orch"]).code == 0
    denied(world.validate(mandate, READ, REPOS, "--caller", "w1"), "CALLER_MISMATCH")
    denied(world.validate(mandate, READ, REPOS, "--caller", "nobody"), "CALLER_MISMATCH")


def test_broken_ancestor_denies_the_chain(world: World) -> None:
    root = ok(world.issue("alice", "orch", depth=2)).json()["id"]
    child = ok(world.delegate(root, "w1")).json()["id"]
    assert world.validate(child).code == 0
    # The root's issuer is suspended: the child's own parties are fine, its chain is not.
    ok(run_cli("principal", "suspend", "alice", "--yes"))
    data = denied(world.validate(child), "DELEGATION_CHAIN_INVALID")
    assert root in data["reason"]


def test_scope_checks(world: World) -> None:
    mandate = ok(world.issue("alice", "orch")).json()["id"]
    denied(world.validate(mandate, COMMENT, REPOS), "ACTION_OUT_OF_SCOPE")
    denied(world.validate(mandate, READ, ISSUES), "RESOURCE_OUT_OF_SCOPE")
    denied(world.validate(mandate, "provider:github:action:*", REPOS), "ACTION_OUT_OF_SCOPE")


def test_intent_binding(world: World) -> None:
    intent = '{"repo": "caracal", "branch": "main"}'
    mandate = ok(world.issue("alice", "orch", extra=("--intent", intent))).json()["id"]
    assert (
        world.validate(mandate, READ, REPOS, "--intent", '{"branch":"main","repo":"caracal"}').code
        == 0
    )
    denied(
        world.validate(mandate, READ, REPOS, "--intent", '{"repo": "other", "branch": "main"}'),
        "INTENT_MISMATCH",
    )
    denied(world.validate(mandate), "INTENT_MISMATCH")
    bad = world.validate(mandate, READ, REPOS, "--intent", '{"a":1,"a":2}')
    assert bad.code == ExitCode.INVALID


def test_key_revoked_after_rotation(world: World) -> None:
    mandate = ok(world.issue("alice", "orch")).json()["id"]
    ok(run_cli("principal", "rotate-key", "alice", "--revoke-old", "--yes"))
    denied(world.validate(mandate), "KEY_REVOKED")


def test_any_exception_inside_validation_is_a_denial(world: World) -> None:
    from caracal.core.validation import Validator

    token = ok(world.issue("alice", "orch")).json()["token"]

    class BrokenState:
        workspace_id = "x"

        def key(self, kid: str):  # type: ignore[no-untyped-def]
            raise RuntimeError("store exploded")

        def mandate(self, mandate_id: str):  # type: ignore[no-untyped-def]
            raise RuntimeError("store exploded")

        def principal_status(self, principal_id: str):  # type: ignore[no-untyped-def]
            raise RuntimeError("store exploded")

    with Caracal.open() as app:
        BrokenState.workspace_id = app.workspace_id
    decision = Validator().validate(token, READ, REPOS, BrokenState(), time.time())
    denied_decision(decision, "INTERNAL_ERROR")


def test_every_decision_is_in_the_ledger(world: World) -> None:
    mandate = ok(world.issue("alice", "orch")).json()["id"]
    world.validate(mandate)
    world.validate(mandate, COMMENT, REPOS)
    world.validate_token("garbage")
    events = ok(run_cli("ledger", "list", "--type", "validation.", "--json")).json()
    assert [(e["type"], e["reason_code"]) for e in events] == [
        ("validation.allowed", "ALLOWED"),
        ("validation.denied", "ACTION_OUT_OF_SCOPE"),
        ("validation.denied", "TOKEN_MALFORMED"),
    ]
    assert events[0]["mandate_id"] == mandate and events[2]["mandate_id"] is None
    assert ok(run_cli("ledger", "verify")).code == 0


def test_every_reason_code_has_a_test_that_triggers_it() -> None:
    """Each documented denial code is asserted by a test in this module (each of which runs in
    CI, so each code is reached): a new code without a test fails here."""
    asserted = codes_asserted(__file__, "denied", "denied_decision")
    missing = set(VALIDATION_DENIALS) - asserted
    assert not missing, f"no test triggers {sorted(missing)}"
