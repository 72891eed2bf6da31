"""Property tests for ``tracekit.canonical_json``: never raises, valid JSON, deterministic."""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime as dt
import decimal
import enum
import json
import math
import os
import pathlib
import random
import subprocess
import sys
import textwrap
import uuid
from typing import Any

import duckdb
import numpy as np
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracekit import canonical_json

SETTINGS = settings(
    max_examples=150, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# -- types the strategies build --------------------------------------------------------------------
class Color(enum.Enum):
    RED = "red"
    BLUE = 2


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 10


class Mode(enum.StrEnum):
    FAST = "fast"


@dataclasses.dataclass
class Box:
    value: Any
    label: str = "box"


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


class Model(pydantic.BaseModel):
    value: Any = None
    n: int = 0


class Opaque:
    """An object with no JSON encoding at all."""

    __slots__ = ()


class BrokenDump:
    """Looks like a pydantic model, but model_dump blows up."""

    def model_dump(self, **kwargs: Any) -> Any:
        raise RuntimeError("model_dump is broken")


class Chameleon:
    """Answers every attribute with a callable returning another Chameleon (mock-like)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *a, **k: Chameleon()


class Exploding:
    """Any attribute lookup other than the dunders raises a non-AttributeError."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise RuntimeError(f"no {name} for you")


def _type_name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


# -- strategies ------------------------------------------------------------------------------------
text = st.text(max_size=12)  # hypothesis excludes lone surrogates by default
floats = st.floats(allow_nan=True, allow_infinity=True)
ints = st.integers(min_value=-(2**70), max_value=2**70)
aware = st.datetimes(timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-5))]))

hashable_leaves = st.one_of(
    st.none(), st.booleans(), ints, floats, text, st.binary(max_size=8),
    st.datetimes(), aware, st.dates(), st.times(), st.timedeltas(),
    st.decimals(allow_nan=False, allow_infinity=False, places=4), st.uuids(),
    st.builds(pathlib.PurePosixPath, text), st.sampled_from(list(Color) + list(Level) + list(Mode)),
    st.builds(np.int64, st.integers(-(2**63), 2**63 - 1)), st.builds(np.float64, floats),
    st.builds(np.float32, st.floats(width=32)), st.builds(np.bool_, st.booleans()),
    st.builds(Point, st.integers(), st.integers()),
)
unhashable_leaves = st.one_of(
    st.builds(bytearray, st.binary(max_size=8)),
    st.builds(np.array, st.lists(floats, max_size=4)),
    st.builds(lambda rows: np.array(rows, dtype=np.int32).reshape(-1, 2),
              st.lists(st.integers(-1000, 1000), max_size=3).map(lambda xs: xs + xs)),
    st.builds(Opaque), st.builds(BrokenDump), st.builds(Chameleon), st.builds(Exploding),
    st.builds(ValueError, text),
)
leaves = st.one_of(hashable_leaves, unhashable_leaves)
keys = st.one_of(text, ints, st.floats(allow_nan=True), st.none(), st.booleans(),
                 st.tuples(st.integers(), text), st.sampled_from(list(Color) + list(Level)))
sets = st.one_of(st.sets(hashable_leaves, max_size=5), st.frozensets(hashable_leaves, max_size=5))


def _cycle(kind: int, inner: Any) -> Any:
    if kind == 0:
        lst: list[Any] = [inner]
        lst.append(lst)
        return lst
    if kind == 1:
        d: dict[str, Any] = {"inner": inner}
        d["me"] = {"up": d}
        return d
    box = Box(inner)
    box.value = [inner, box]
    return box


def _contains_set(value: Any, depth: int = 0) -> bool:
    if depth > 20:
        return False
    if isinstance(value, set | frozenset):
        return True
    if isinstance(value, dict):
        return any(_contains_set(v, depth + 1) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_contains_set(v, depth + 1) for v in value)
    if isinstance(value, Box | Model):
        return _contains_set(value.value, depth + 1)
    return False


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(text, children, max_size=4),
        st.dictionaries(keys, children, max_size=4),
        st.builds(Box, children, text),
        st.builds(Model, value=children.filter(lambda v: not _contains_set(v)),
                  n=st.integers(-5, 5)),
        st.builds(_cycle, st.integers(0, 2), children),
    )


payloads = st.recursive(st.one_of(leaves, sets), _extend, max_leaves=25)


@pytest.fixture(scope="module")
def duck() -> Any:
    con = duckdb.connect()
    yield con
    con.close()


# -- never raises, valid JSON ----------------------------------------------------------------------
@SETTINGS
@given(payloads)
def test_any_payload_encodes_to_valid_json(duck: Any, payload: Any) -> None:
    out = canonical_json(payload)
    assert isinstance(out, str)
    json.loads(out)  # raises if not JSON
    out.encode("utf-8")  # strict: no lone surrogates from generated text
    valid, = duck.execute("SELECT json_valid(?::VARCHAR)", [out]).fetchone()
    assert valid is True
    # never emits the non-standard NaN / Infinity literals
    json.loads(out, parse_constant=lambda c: pytest.fail(f"non-standard constant {c}"))


@SETTINGS
@given(payloads)
def test_same_input_same_bytes(payload: Any) -> None:
    first = canonical_json(payload)
    assert canonical_json(payload) == first
    assert canonical_json(copy.deepcopy(payload)) == first


# -- canonical form on plain JSON ------------------------------------------------------------------
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), ints, st.floats(allow_nan=False, allow_infinity=False),
              text),
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(text, c, max_size=4)),
    max_leaves=30,
)


@SETTINGS
@given(json_values)
def test_plain_json_round_trips_and_is_canonical(value: Any) -> None:
    out = canonical_json(value)
    assert json.loads(out) == value
    # a fixed point of "sorted keys, compact separators": nothing to re-canonicalize
    assert out == json.dumps(json.loads(out), sort_keys=True, separators=(",", ":"),
                             ensure_ascii=False)


def _reorder(obj: Any, rnd: random.Random) -> Any:
    """A structurally equal copy whose dicts have a shuffled insertion order."""
    if isinstance(obj, dict):
        items = list(obj.items())
        rnd.shuffle(items)
        return {k: _reorder(v, rnd) for k, v in items}
    if isinstance(obj, list):
        return [_reorder(v, rnd) for v in obj]
    return obj


# keys that cannot collide once stringified (collisions have a test of their own below)
safe_keys = st.one_of(text.map(lambda s: "s:" + s), st.integers(), st.none())
reorderable = st.recursive(
    st.one_of(hashable_leaves, sets, st.builds(Opaque)),
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(safe_keys, c, max_size=5),
                        st.builds(Box, c, text)),
    max_leaves=30,
)


@SETTINGS
@given(reorderable, st.randoms(use_true_random=False))
def test_insertion_order_does_not_matter(value: Any, rnd: random.Random) -> None:
    shuffled = _reorder(value, rnd)
    assert canonical_json(shuffled) == canonical_json(value)


@SETTINGS
@given(st.sets(hashable_leaves, max_size=8), st.randoms(use_true_random=False))
def test_set_order_does_not_matter(items: set[Any], rnd: random.Random) -> None:
    as_list = list(items)
    rnd.shuffle(as_list)
    assert canonical_json(set(as_list)) == canonical_json(items)
    assert canonical_json(frozenset(reversed(as_list))) == canonical_json(items)
    decoded = json.loads(canonical_json(items))
    assert isinstance(decoded, list)
    assert len(decoded) == len(items)


_SUBPROCESS_CODE = textwrap.dedent(
    """
    import sys
    from tracekit import canonical_json
    words = {f"w{i}-{chr(945 + i % 20)}" for i in range(200)}
    payload = {
        "words": words,
        "frozen": frozenset((w, len(w)) for w in sorted(words)[:50]),
        "mixed": {1, "1", 2.5, None, ("t", 1), b"raw"},
        "nested": [{"k": set("abcdefghij")}],
    }
    sys.stdout.write(repr(list(words)[:5]) + "\\n")
    sys.stdout.write(canonical_json(payload))
    """
)


def test_sets_encode_identically_across_hash_seeds() -> None:
    outputs = []
    orders = []
    for seed in ("1", "2", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run(
            [sys.executable, "-c", _SUBPROCESS_CODE], env=env, capture_output=True,
            text=True, encoding="utf-8", timeout=60, check=True,
        )
        order, out = proc.stdout.split("\n", 1)
        orders.append(order)
        outputs.append(out)
    # the seeds really changed the iteration order, so the test can tell
    assert len(set(orders)) > 1
    assert outputs[0] == outputs[1] == outputs[2]
    decoded = json.loads(outputs[0])
    assert decoded["words"] == sorted(decoded["words"], key=lambda w: json.dumps(w))
    assert decoded["nested"] == [{"k": list("abcdefghij")}]


# -- documented forms of specific types ------------------------------------------------------------
_UUID = uuid.UUID("12345678-1234-5678-1234-567812345678")
_NAIVE = dt.datetime(2024, 1, 2, 3, 4, 5, 6)
_AWARE = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
_cyc_list: list[Any] = [1]
_cyc_list.append(_cyc_list)
_cyc_dict: dict[str, Any] = {"a": 1}
_cyc_dict["self"] = _cyc_dict

KNOWN = [
    pytest.param(_NAIVE, '"2024-01-02T03:04:05.000006"', id="datetime-naive"),
    pytest.param(_AWARE, '"2024-01-02T03:04:05+00:00"', id="datetime-aware"),
    pytest.param(dt.date(2024, 2, 29), '"2024-02-29"', id="date"),
    pytest.param(dt.time(23, 59, 1), '"23:59:01"', id="time"),
    pytest.param(dt.timedelta(minutes=1, milliseconds=500), '{"$timedelta":60.5}', id="timedelta"),
    pytest.param(b"\x00\xffhi", '{"$bytes":"' + base64.b64encode(b"\x00\xffhi").decode() + '"}',
                 id="bytes"),
    pytest.param(bytearray(b"ab"), '{"$bytes":"YWI="}', id="bytearray"),
    pytest.param(memoryview(b"ab"), '{"$bytes":"YWI="}', id="memoryview"),
    pytest.param(decimal.Decimal("1.10"), '"1.10"', id="decimal"),
    pytest.param(decimal.Decimal("NaN"), '"NaN"', id="decimal-nan"),
    pytest.param(_UUID, '"12345678-1234-5678-1234-567812345678"', id="uuid"),
    pytest.param(pathlib.PurePosixPath("/tmp/x y"), '"/tmp/x y"', id="path"),
    pytest.param(Color.RED, '"red"', id="enum"),
    pytest.param(Color.BLUE, "2", id="enum-int-value"),
    pytest.param(Level.HIGH, "10", id="intenum"),
    pytest.param(Mode.FAST, '"fast"', id="strenum"),
    pytest.param({3, 1, 2}, "[1,2,3]", id="set-int"),
    pytest.param(frozenset({"b", "a", "c"}), '["a","b","c"]', id="frozenset-str"),
    pytest.param({1, "1"}, '["1",1]', id="set-mixed"),
    pytest.param((1, (2, "x")), '[1,[2,"x"]]', id="tuple"),
    pytest.param(Box([1, 2], "b"), '{"label":"b","value":[1,2]}', id="dataclass"),
    pytest.param(Box(Point(1, 2)), '{"label":"box","value":{"x":1,"y":2}}', id="dataclass-nested"),
    pytest.param(Model(value={"z": 1, "a": 2}, n=3), '{"n":3,"value":{"a":2,"z":1}}',
                 id="pydantic"),
    pytest.param(np.int64(7), "7", id="np-int64"),
    pytest.param(np.float32(0.5), "0.5", id="np-float32"),
    pytest.param(np.bool_(True), "true", id="np-bool"),
    pytest.param(np.array([[1, 2], [3, 4]]), "[[1,2],[3,4]]", id="np-array-2d"),
    pytest.param(np.array([1.5, np.nan]), '[1.5,{"$float":"nan"}]', id="np-array-nan"),
    pytest.param(np.array(3), "3", id="np-0d-array"),
    pytest.param(float("nan"), '{"$float":"nan"}', id="nan"),
    pytest.param(float("inf"), '{"$float":"inf"}', id="inf"),
    pytest.param([float("-inf")], '[{"$float":"-inf"}]', id="-inf"),
    pytest.param({1: "a"}, '{"1":"a"}', id="int-key"),
    pytest.param({None: 1}, '{"null":1}', id="none-key"),
    pytest.param({True: 1, "x": 2}, '{"true":1,"x":2}', id="bool-key"),
    pytest.param({(1, "a"): 1, "b": 2}, '{"[1,\\"a\\"]":1,"b":2}', id="tuple-key"),
    pytest.param({1.5: "x", "a": None}, '{"1.5":"x","a":null}', id="float-key"),
    pytest.param(ValueError("boom"), '{"$error":"builtins.ValueError","message":"boom"}',
                 id="exception"),
    pytest.param(_cyc_list, '[1,{"$ref":"builtins.list"}]', id="cycle-list"),
    pytest.param(_cyc_dict, '{"a":1,"self":{"$ref":"builtins.dict"}}', id="cycle-dict"),
    pytest.param({"k": "é\n\"", "a": [None, True]}, '{"a":[null,true],"k":"é\\n\\""}',
                 id="plain-json"),
]


@pytest.mark.parametrize(("value", "expected"), KNOWN)
def test_known_types_have_documented_forms(value: Any, expected: str) -> None:
    assert canonical_json(value) == expected


def test_unknown_objects_become_typed_placeholders() -> None:
    for obj in (Opaque(), BrokenDump(), Exploding()):
        assert json.loads(canonical_json(obj)) == {"$object": _type_name(obj)}
        assert json.loads(canonical_json({"x": [obj]})) == {"x": [{"$object": _type_name(obj)}]}
    # a mock-like object that converts into itself forever is cut off, not looped on
    assert json.loads(canonical_json(Chameleon()))


def test_pydantic_model_with_unencodable_field_keeps_the_other_fields() -> None:
    out = json.loads(canonical_json(Model(value=Opaque())))
    assert out == {"n": 0, "value": {"$object": _type_name(Opaque())}}


def test_dataclass_cycle_is_cut() -> None:
    box = Box(None)
    box.value = [1, box]
    assert json.loads(canonical_json(box)) == {
        "label": "box", "value": [1, {"$ref": _type_name(box)}]
    }


def test_very_deep_nesting_does_not_raise() -> None:
    deep: Any = None
    for _ in range(100_000):
        deep = [deep]
    out = canonical_json(deep)
    json.loads(out)
    deep_dict: Any = float("nan")  # forces the slow path all the way down
    for _ in range(10_000):
        deep_dict = {"d": deep_dict}
    json.loads(canonical_json(deep_dict))


def test_shared_reference_is_not_a_cycle() -> None:
    shared = {"v": 1}
    assert canonical_json([shared, shared, float("nan")]) == (
        '[{"v":1},{"v":1},{"$float":"nan"}]'
    )


def test_huge_int_does_not_raise() -> None:
    out = canonical_json({"n": 10**5000})
    assert isinstance(json.loads(out), dict)


# -- once defects, now fixed: keep them fixed -----------------------------------------------------
def test_colliding_keys_are_insertion_order_independent() -> None:
    a = {1: "int", "1": "str"}
    b = {"1": "str", 1: "int"}
    assert a == b
    assert canonical_json(a) == canonical_json(b)


def test_int_keys_sorted_the_same_on_fast_and_slow_path() -> None:
    fast = json.loads(canonical_json([{10: 1, 9: 2}]), object_pairs_hook=list)[0]
    slow = json.loads(canonical_json([{10: 1, 9: 2}, math.nan]), object_pairs_hook=list)[0]
    assert fast == slow


def test_numpy_nan_encodes_like_float_nan() -> None:
    assert canonical_json(np.float64("nan")) == canonical_json(float("nan"))


def test_pydantic_set_field_is_hash_seed_independent() -> None:
    code = (
        "import sys, pydantic\n"
        "from tracekit import canonical_json\n"
        "class Tagged(pydantic.BaseModel):\n"
        "    tags: set[str]\n"
        "sys.stdout.write(canonical_json(Tagged(tags={f't{i}' for i in range(12)})))\n"
    )
    outs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}, timeout=60).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outs) == 1


def test_lone_surrogate_output_is_utf8_encodable() -> None:
    canonical_json({"path": "caf\udce9"}).encode("utf-8")
