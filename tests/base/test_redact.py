"""Property tests for secret redaction, on its own and end to end through the recorder."""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracekit
from tracekit import Redactor, canonical_json

MARKER = "[REDACTED]"
SETTINGS = settings(
    max_examples=150, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
_HINTS = ("auth", "key", "pass", "pwd", "secret", "token", "cookie", "credential", "bearer",
          "basic", "sk-", "akia", "asia", "xox", "gh")

SENSITIVE_KEYS = [
    "Authorization", "authorization", "AUTHORIZATION", "Proxy-Authorization", "api_key",
    "API-KEY", "x-api-key", "X_Api_Key", "apiKey", "apikey", "password", "db_password",
    "Password", "passwd", "pwd", "client_secret", "secret", "ClientSecret", "access_token",
    "refresh_token", "id_token", "token", "Cookie", "set-cookie", "private_key", "privateKey",
    "aws_access_key_id", "accessKey", "credentials", "credential",
]
USAGE_KEYS = [
    "prompt_tokens", "completion_tokens", "total_tokens", "max_tokens", "input_tokens",
    "output_tokens", "cache_read_input_tokens", "tokens_in", "tokens_out", "token_count",
    "tokenizer", "key", "keys", "author", "keyboard", "passenger", "role", "content",
]


def _clean(text: str) -> bool:
    lowered = text.lower()
    return not any(hint in lowered for hint in _HINTS)


# harmless text has no upper-case letters and no digits, so it can never spell a generated secret
harmless_text = st.text(
    st.characters(blacklist_categories=("Cs", "Lu", "Nd")), max_size=15
).filter(_clean)
harmless_key = st.one_of(st.sampled_from(USAGE_KEYS), harmless_text)
harmless_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(),
              st.floats(allow_nan=False, allow_infinity=False), harmless_text),
    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(harmless_key, c, max_size=3)),
    max_leaves=12,
)

# every generated secret carries "Z9" (upper case + digit) so harmless data cannot contain it
_TOKEN = string.ascii_letters + string.digits + "._~+/=-"
_SK = string.ascii_letters + string.digits + "_-"
_AWS = string.ascii_uppercase + string.digits


_ASSIGN_KEYWORDS = ["api_key", "API-KEY", "apikey", "password", "Passwd", "pwd", "client_secret",
                    "access_token", "refresh-token", "auth_token", "id_token", "token"]
# what may follow ``password=`` and still be taken whole: no space, quote, & , ; } ]
# no backslash: in JSON text it starts an escape, where a value must end so the JSON stays valid
_ASSIGNED = string.ascii_letters + string.digits + "._~+/=-!#$%()*<>?@[^`{|"


@st.composite
def pattern_secret(draw: st.DrawFn) -> tuple[str, list[str], str]:
    """A value-pattern secret, the parts that must not survive, and what replaces it."""
    kind = draw(st.sampled_from(["bearer", "sk", "aws", "asia", "assign"]))
    if kind == "bearer":
        word = draw(st.sampled_from(["Bearer", "bearer", "BEARER"]))
        token = "Z9" + draw(st.text(_TOKEN, min_size=8, max_size=40))
        sep = draw(st.sampled_from([" ", "  "]))
        return f"{word}{sep}{token}", [token], MARKER
    if kind == "sk":
        body = "Z9" + draw(st.text(_SK, min_size=14, max_size=40))
        return f"sk-{body}", [body], MARKER
    if kind == "assign":  # ``password=...`` in free text: the key name stays, the value goes
        keyword = draw(st.sampled_from(_ASSIGN_KEYWORDS))
        sep = draw(st.sampled_from(["=", ":", ": ", " = "]))
        value = "Z9" + draw(st.text(_ASSIGNED, min_size=1, max_size=20))
        return f"{keyword}{sep}{value}", [value], f"{keyword}{sep}{MARKER}"
    prefix = "AKIA" if kind == "aws" else "ASIA"
    body = "Z9" + draw(st.text(_AWS, min_size=14, max_size=14))
    return prefix + body, [body], MARKER


secret_value = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20).map(
        lambda s: "pw-Z9" + s),
    st.integers(min_value=10**6).map(lambda n: f"pw-Z9-{n}"),
)


@st.composite
def secret_site(draw: st.DrawFn) -> tuple[Any, Any, list[str], int]:
    """(payload, expected after redaction, strings that must vanish, expected count)."""
    kind = draw(st.sampled_from(["pattern", "key", "key-nested", "key-none"]))
    if kind == "pattern":
        secret, parts, replacement = draw(pattern_secret())
        pre, post = draw(harmless_text), draw(harmless_text)
        actual: Any = f"{pre} {secret} {post}"
        expected: Any = f"{pre} {replacement} {post}"
        vanish, count = [secret, *parts], 1
    else:
        key = draw(st.sampled_from(SENSITIVE_KEYS))
        siblings = draw(st.dictionaries(harmless_key, harmless_json, max_size=3))
        if kind == "key-none":  # an absent value is not a secret and is not counted
            value, vanish, count = None, [], 0
            redacted: Any = None
        elif kind == "key":
            value = draw(secret_value)
            vanish = [value, json.dumps(value, ensure_ascii=False)[1:-1]]
            count, redacted = 1, MARKER
        else:  # a whole structure under a sensitive key goes, even if it holds a pattern secret
            value_text = draw(secret_value)
            secret, parts, _ = draw(pattern_secret())
            value = {"user": value_text, "nested": [secret, {"deep": value_text}]}
            vanish = [value_text, secret, *parts]
            count, redacted = 1, MARKER
        actual = {**siblings, key: value}
        expected = {**siblings, key: redacted}
    for _ in range(draw(st.integers(0, 4))):  # bury it at a random depth
        if draw(st.booleans()):
            sibs = draw(st.lists(harmless_json, max_size=3))
            i = draw(st.integers(0, len(sibs)))
            actual, expected = [*sibs[:i], actual, *sibs[i:]], [*sibs[:i], expected, *sibs[i:]]
        else:
            k = draw(harmless_key)
            sibs = draw(st.dictionaries(harmless_key, harmless_json, max_size=3))
            actual, expected = {**sibs, k: actual}, {**sibs, k: expected}
    return actual, expected, vanish, count


@st.composite
def secret_document(draw: st.DrawFn) -> tuple[Any, Any, list[str], int]:
    sites = draw(st.lists(secret_site(), min_size=1, max_size=4))
    filler = draw(harmless_json)
    if draw(st.booleans()):
        actual = [filler, *(s[0] for s in sites)]
        expected = [filler, *(s[1] for s in sites)]
    else:
        actual = {"filler": filler, **{f"site{i}": s[0] for i, s in enumerate(sites)}}
        expected = {"filler": filler, **{f"site{i}": s[1] for i, s in enumerate(sites)}}
    vanish = [v for s in sites for v in s[2]]
    return actual, expected, vanish, sum(s[3] for s in sites)


# -- Redactor on its own --------------------------------------------------------------------------
@SETTINGS
@given(secret_document())
def test_secrets_never_survive_redact_json(doc: tuple[Any, Any, list[str], int]) -> None:
    actual, expected, vanish, count = doc
    text = canonical_json(actual)
    for secret in vanish:  # positive control: the secrets really are in the input
        if secret == json.dumps(secret, ensure_ascii=False)[1:-1]:
            assert secret in text
    out, n = Redactor().redact_json(text)
    for secret in vanish:
        assert secret not in out
    assert json.loads(out) == expected  # everything else untouched
    assert n == count


@SETTINGS
@given(harmless_json)
def test_harmless_json_is_untouched(value: Any) -> None:
    text = canonical_json(value)
    assert Redactor().redact_json(text) == (text, 0)


@SETTINGS
@given(st.dictionaries(st.sampled_from(USAGE_KEYS), st.integers(0, 10**6), min_size=1),
       harmless_json)
def test_usage_keys_are_not_secrets(usage: dict[str, int], other: Any) -> None:
    # a sensitive key elsewhere in the document forces the JSON walk; usage must survive it
    text = canonical_json({"usage": usage, "other": other, "api_key": "pw-Z9-k"})
    out, n = Redactor().redact_json(text)
    assert n == 1
    decoded = json.loads(out)
    assert decoded["usage"] == usage
    assert decoded["api_key"] == MARKER


@SETTINGS
@given(st.lists(st.tuples(harmless_text, pattern_secret()), min_size=1, max_size=4), harmless_text)
def test_redact_text_removes_every_pattern_secret(
    pieces: list[tuple[str, tuple[str, list[str], str]]], tail: str
) -> None:
    text = " ".join(f"{pre} {secret}" for pre, (secret, _, _) in pieces) + f" {tail}"
    expected = " ".join(f"{pre} {repl}" for pre, (_, _, repl) in pieces) + f" {tail}"
    out, n = Redactor().redact_text(text)
    assert out == expected
    assert n == len(pieces)
    for _, (secret, parts, _) in pieces:
        assert secret not in out
        assert all(part not in out for part in parts)


@SETTINGS
@given(harmless_text)
def test_redact_text_leaves_harmless_text_alone(text: str) -> None:
    assert Redactor().redact_text(text) == (text, 0)


def test_redact_text_uses_patterns_only() -> None:
    # free text has no key structure: a sensitive word alone is not a secret
    assert Redactor().redact_text("password reset for api_key rotation") == (
        "password reset for api_key rotation", 0)


def test_null_under_sensitive_key_is_kept_and_not_counted() -> None:
    assert Redactor().redact_json('{"password":null}') == ('{"password":null}', 0)


def test_user_keys_patterns_and_marker() -> None:
    red = Redactor(keys=(r"ssn", r"x-internal-[a-z]+"), patterns=(r"\d{3}-\d{2}-\d{4}",),
                   marker="<gone>")
    doc = {"SSN": "pw-1", "x-internal-sig": "pw-2", "note": "call 123-45-6789 today",
           "api_key": "pw-3", "plain": "nothing here"}
    out, n = red.redact_json(canonical_json(doc))
    assert json.loads(out) == {"SSN": "<gone>", "x-internal-sig": "<gone>",
                               "note": "call <gone> today", "api_key": "<gone>",
                               "plain": "nothing here"}
    assert n == 4
    assert red.redact_text("id 987-65-4321 and sk-Z9abcdefghijklmnopq") == (
        "id <gone> and <gone>", 2)
    # user rules come on top of the defaults; the defaults alone do not know them
    assert Redactor().redact_json('{"ssn":"pw-1"}') == ('{"ssn":"pw-1"}', 0)


@pytest.mark.parametrize("field", ["keys", "patterns"])
@pytest.mark.parametrize("rule", ["(unclosed", "[a-", "*star", "a{2,1}"])
def test_invalid_rule_is_a_value_error_naming_it(field: str, rule: str) -> None:
    with pytest.raises(ValueError, match="redaction rule") as info:
        Redactor(**{field: (rule,)})
    assert repr(rule) in str(info.value)


def test_invalid_rule_through_configure(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as info:
        tracekit.configure(store=tmp_path / "s", redact={"patterns": ["ok", "(bad"]})
    assert "'(bad'" in str(info.value)
    with pytest.raises(ValueError, match="unknown entries"):
        tracekit.configure(store=tmp_path / "s", redact={"kyes": ["x"]})


@pytest.mark.parametrize("field", ["keys", "patterns"])
def test_rule_with_inline_flag_is_usable_or_a_value_error(field: str) -> None:
    try:
        red = Redactor(**{field: ("(?i)zebra",)})
    except ValueError as exc:
        assert "(?i)zebra" in str(exc)
    else:
        assert red.redact_text("ZEBRA")[1] == (1 if field == "patterns" else 0)


def test_quoted_assignment_is_redacted_and_json_stays_valid() -> None:
    out, _ = Redactor().redact_json(canonical_json({"note": 'config: password="pw-Z9-q" ok'}))
    assert "pw-Z9-q" not in out
    json.loads(out)


def test_quoted_assignment_in_free_text_is_redacted() -> None:
    out, _ = Redactor().redact_text('login failed: password="pw-Z9-q"')
    assert "pw-Z9-q" not in out


def test_words_ending_in_sk_are_not_keys() -> None:
    text = canonical_json({"file": "task-management-system-notes.md"})
    assert Redactor().redact_json(text) == (text, 0)


def test_json_body_returned_as_text_is_redacted() -> None:
    body = '{"access_token": "pw-Z9-oauth-value", "expires_in": 3600}'
    out, _ = Redactor().redact_json(canonical_json({"status": 200, "body": body}))
    assert "pw-Z9-oauth-value" not in out


# -- end to end through the recorder ---------------------------------------------------------------
SK_PROMPT = "sk-Z9promptKEY0123456789abcdef"
AWS_SYSTEM = "AKIAZ9SYSTEMKEY00001"
BEARER_HDR = "Z9eyJhbGciOiJIUzI1NiJ9.header-tok_1"
SK_MODEL = "sk-Z9modelOUTPUT_key-0123456789"
PASSWORD_MODEL = "pw-Z9 correct horse battery"
CLIENT_SECRET = "pw-Z9-run-attr-client-secret"
API_KEY = "pw-Z9-plain-api-key-value"
COOKIE = "session=pw-Z9-cookie-jar"
SK_RESULT = "sk-Z9resultKEYzyxwvutsrqponm"
PASSWORD_LOGIN = "pw-Z9-login-password"
BEARER_ERR = "Z9errTOKEN.abcdefghijkl"
AWS_HANDLED = "ASIAZ9HANDLEDERR0002"
ACCESS_TOKEN = "pw-Z9-progress-access-token"
SK_FATAL = "sk-Z9fatalERRORkey_987654321"
SECRETS = [SK_PROMPT, AWS_SYSTEM, BEARER_HDR, SK_MODEL, PASSWORD_MODEL, CLIENT_SECRET, API_KEY,
           COOKIE, SK_RESULT, PASSWORD_LOGIN, BEARER_ERR, AWS_HANDLED, ACCESS_TOKEN, SK_FATAL]
CANARY = "canary-q7Kx-harmless-visible"


def _record_secret_run() -> str:
    @tracekit.tool
    def fetch(url: str, api_key: str, headers: dict[str, str]) -> dict[str, Any]:
        return {"body": f"your rotated key is {SK_RESULT} keep it", "count": 3}

    @tracekit.tool(writes=True)
    def login(user: str, password: str) -> None:
        raise PermissionError(f"rejected Bearer {BEARER_ERR}")

    with pytest.raises(RuntimeError), tracekit.run(
        tenant="acme", client_secret=CLIENT_SECRET
    ) as run:
        run.prompt(
            [{"role": "system", "content": f"aws {AWS_SYSTEM} ok"},
             {"role": "user", "content": f"use {SK_PROMPT} please"}],
            headers={"Authorization": f"Bearer {BEARER_HDR}"},
        )
        run.model_output(
            f"calling with {SK_MODEL}",
            tool_calls=[{"function": {"arguments": {"password": PASSWORD_MODEL}}}],
            usage={"prompt_tokens": 12, "completion_tokens": 5}, max_tokens=256,
        )
        fetch("https://example.test/v1", API_KEY, {"Cookie": COOKIE, "accept": "json"})
        try:
            login("bob", PASSWORD_LOGIN)
        except PermissionError as exc:
            run.error(f"retrying after {AWS_HANDLED} was refused: {exc}")
        run.progress("fetched", access_token=ACCESS_TOKEN, note=CANARY)
        raise RuntimeError(f"gave up, key {SK_FATAL}")
    return run.run_id


def _all_bytes(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


EXPECTED_COUNTS = {
    ("run_start", None): 1,  # run attrs: client_secret
    ("prompt", None): 3,  # AWS + sk in messages, Authorization header in attrs
    ("model_output", None): 2,  # sk in content, password in tool_calls
    ("tool_call", "fetch"): 2,  # api_key arg, Cookie header
    ("tool_result", "fetch"): 1,  # sk in output
    ("tool_call", "login"): 1,  # password arg
    ("tool_result", "login"): 1,  # bearer in the error text
    ("error", None): 2,  # ASIA key and the bearer token quoted from the exception
    ("progress", "fetched"): 1,  # access_token attr
    ("run_end", None): 1,  # sk in the unhandled exception
}


def test_secrets_never_reach_disk(store: Path) -> None:
    run_id = _record_secret_run()
    assert tracekit.flush(timeout=10)

    # live segment (uncompressed Arrow IPC): the canary proves a byte scan can see payloads
    live = _all_bytes(store)
    assert any(CANARY.encode() in data for data in live.values())
    for path, data in live.items():
        for secret in SECRETS:
            assert secret.encode() not in data, (secret, path)

    con = tracekit.connect(store)
    rows = con.execute(
        "SELECT kind, name, args, output, error, attrs FROM events WHERE run_id = ? ORDER BY seq",
        [run_id],
    ).fetchall()
    con.close()
    assert len(rows) == 10
    counts = {}
    for kind, name, args, output, error, attrs in rows:
        key = (kind, name if kind in ("tool_call", "tool_result", "progress") else None)
        counts[key] = json.loads(attrs)["redacted"]
        for value in (args, output, error, attrs):
            for secret in SECRETS:
                assert secret not in (value or ""), (kind, secret)
    assert counts == EXPECTED_COUNTS

    assert tracekit.shutdown()
    files = _all_bytes(store)
    parts = [p for p in files if p.suffix == ".parquet"]
    assert parts
    for path, data in files.items():
        for secret in SECRETS:
            assert secret.encode() not in data, (secret, path)
    # Parquet pages are compressed, so also scan every decoded value
    decoded = "\n".join(str(pq.read_table(p).to_pylist()) for p in parts)
    assert CANARY in decoded
    for secret in SECRETS:
        assert secret not in decoded


def test_redaction_keeps_harmless_fields(store: Path) -> None:
    run_id = _record_secret_run()
    tracekit.shutdown()
    con = tracekit.connect(store)
    by_kind = {
        (kind, name): (args, output, error, attrs, tin, tout)
        for kind, name, args, output, error, attrs, tin, tout in con.execute(
            "SELECT kind, name, args, output, error, attrs, tokens_in, tokens_out FROM events "
            "WHERE run_id = ?", [run_id]).fetchall()
    }
    con.close()
    _, output, _, attrs, tin, tout = by_kind[("model_output", "unknown")]
    assert (tin, tout) == (12, 5)
    assert json.loads(attrs) == {"max_tokens": 256, "redacted": 2}
    assert json.loads(output) == {
        "content": f"calling with {MARKER}",
        "tool_calls": [{"function": {"arguments": {"password": MARKER}}}],
    }
    args, _, _, attrs, _, _ = by_kind[("tool_call", "fetch")]
    assert json.loads(args) == {"url": "https://example.test/v1", "api_key": MARKER,
                                "headers": {"Cookie": MARKER, "accept": "json"}}
    assert json.loads(attrs) == {"redacted": 2}
    _, _, _, attrs, _, _ = by_kind[("tool_call", "login")]
    assert json.loads(attrs) == {"redacted": 1, "writes": True}
    _, _, error, _, _, _ = by_kind[("tool_result", "login")]
    assert error == f"PermissionError: rejected {MARKER}"
    _, _, _, attrs, _, _ = by_kind[("progress", "fetched")]
    assert json.loads(attrs) == {"access_token": MARKER, "note": CANARY, "redacted": 1}
    _, _, error, _, _, _ = by_kind[("run_end", None)]
    assert error == f"RuntimeError: gave up, key {MARKER}"


def test_clean_run_has_no_redaction_attrs(store: Path) -> None:
    with tracekit.run(tenant="t") as run:
        run.prompt([{"role": "user", "content": "what is a token budget?"}], max_tokens=10)
        run.model_output("a limit", usage={"input_tokens": 3, "output_tokens": 2})
    tracekit.shutdown()
    con = tracekit.connect(store)
    attrs = con.execute("SELECT attrs FROM events ORDER BY seq").fetchall()
    con.close()
    assert [a for (a,) in attrs] == [None, '{"max_tokens":10}', None, None]


def test_user_rules_apply_end_to_end(tmp_path: Path) -> None:
    root = tmp_path / "custom"
    tracekit.configure(store=root, redact={"keys": ["ssn"], "patterns": [r"ACCT-\d{6}"]})
    try:
        with tracekit.run(tenant="t") as run:
            run.prompt({"ssn": "pw-Z9-078051120", "msg": "move ACCT-123456 now"})
        assert tracekit.shutdown()
    finally:
        tracekit.shutdown()
    con = tracekit.connect(root)
    args, attrs = con.execute("SELECT args, attrs FROM events WHERE kind = 'prompt'").fetchone()
    con.close()
    assert json.loads(args) == {"ssn": MARKER, "msg": f"move {MARKER} now"}
    assert json.loads(attrs) == {"redacted": 2}
    for data in _all_bytes(root).values():
        assert b"pw-Z9-078051120" not in data
        assert b"ACCT-123456" not in data


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(secret_document(), st.lists(st.tuples(harmless_text, pattern_secret()), min_size=1,
                                   max_size=3))
def test_random_secrets_never_reach_the_store(
    doc: tuple[Any, Any, list[str], int],
    error_pieces: list[tuple[str, tuple[str, list[str], str]]],
) -> None:
    actual, expected, vanish, count = doc
    error_text = " ".join(f"{pre} {secret}" for pre, (secret, _, _) in error_pieces)
    vanish = vanish + [s for _, (secret, parts, _) in error_pieces for s in (secret, *parts)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "store"
        tracekit.configure(store=root)
        try:
            with tracekit.run(tenant="t") as run:
                run.call_tool("echo", lambda payload: payload, actual)
                run.error(error_text)
            assert tracekit.shutdown()
        finally:
            tracekit.shutdown()
        for data in _all_bytes(root).values():
            for secret in vanish:
                assert secret.encode() not in data
        con = tracekit.connect(root)
        got = {kind: (attrs, args, output, error) for kind, attrs, args, output, error in
               con.execute("SELECT kind, attrs, args, output, error FROM events").fetchall()}
        con.close()
    call_attrs, call_args, _, _ = got["tool_call"]
    result_attrs, _, result_output, _ = got["tool_result"]
    err_attrs, _, _, err = got["error"]
    assert json.loads(call_args) == {"*args": [expected]}
    assert json.loads(result_output) == expected
    expected_attrs = None if count == 0 else {"redacted": count}
    assert (json.loads(call_attrs) if call_attrs else None) == expected_attrs
    assert (json.loads(result_attrs) if result_attrs else None) == expected_attrs
    assert json.loads(err_attrs) == {"redacted": len(error_pieces)}
    for secret in vanish:
        assert secret not in err


def test_secret_in_progress_label_is_redacted(store: Path) -> None:
    with tracekit.run(tenant="t") as run:
        run.progress(f"used {SK_FATAL}")
    tracekit.shutdown()
    for data in _all_bytes(store).values():
        assert SK_FATAL.encode() not in data
    con = tracekit.connect(store)
    names = [n for (n,) in con.execute("SELECT name FROM events").fetchall()]
    con.close()
    assert all(SK_FATAL not in (n or "") for n in names)


@pytest.mark.parametrize(
    "attrs",
    [
        pytest.param({"redacted": "yes", "api_key": "pw-Z9-attr"}, id="user-attr-named-redacted"),
        pytest.param({"note": 'config: password="pw-Z9-q"'}, id="quoted-assignment"),
    ],
)
def test_attrs_do_not_stall_the_recorder(store: Path, attrs: dict[str, str]) -> None:
    with tracekit.run(tenant="t") as run:
        run.progress("x", **attrs)
        run.progress("after")
    ok = tracekit.flush(timeout=2)
    tracekit.shutdown(timeout=0.5)
    assert ok
    con = tracekit.connect(store)
    names = [n for (n,) in con.execute("SELECT name FROM events").fetchall()]
    con.close()
    assert "after" in names


def test_organisation_and_project_ids_are_redacted() -> None:
    red = Redactor()
    org, proj = "org-" + "a1B2c3D4e5F6g7H8i9J0k1L2", "proj_" + "Z9y8X7w6V5u4T3s2R1q0P9o8"
    doc = canonical_json({"headers": {"openai-organization": org, "openai-project": proj,
                                      "anthropic-organization-id": "a1b2-c3d4"},
                          "note": f"quota for {org} / {proj}"})
    text, count = red.redact_json(doc)
    assert count == 5 and org not in text and proj not in text and "a1b2-c3d4" not in text
    assert red.redact_text("the org-chart of the proj_x folder") == (
        "the org-chart of the proj_x folder", 0)  # words, not ids
