"""The one TOML emitter: what it writes, tomllib reads back unchanged."""

from __future__ import annotations

import math
import tomllib

import numpy as np
import pytest

from analogebl.tomlio import dumps, nest


def test_values_round_trip_exactly():
    doc = {
        "f": [2e-06, 0.1, 1e20, -0.0, 1.0, 5e-324, math.inf, -math.inf],
        "i": [0, -3, 2**62],
        "b": [True, False],
        "s": 'quote " backslash \\ tab \t newline \n é \x7f \x00 end',
        "empty": [],
        "nested": [[1, 2], ["a"]],
        "t": (1, 2),
        "np": [np.float64(0.1), np.int64(3), np.bool_(True)],
        "weird key": 1,
        "": 2,
    }
    back = tomllib.loads(dumps(doc))
    assert back == {**doc, "t": [1, 2], "np": [0.1, 3, True]}
    assert [type(x) for x in back["np"]] == [float, int, bool]
    assert math.isnan(tomllib.loads(dumps({"x": math.nan}))["x"])


def test_none_is_left_out_and_tables_nest():
    doc = {
        "header_key": None,
        "a": 1,
        "t": {"x": None, "y": "z", "u": {"v": 1.5}},
        "only_subtables": {"s": {"k": 1}},
        "empty": {},
        "rows": [{"n": 1}, {"n": 2, "sub": {"q": [1.0]}}],
    }
    text = dumps(doc, header="study x, tier y\nsecond line")
    assert text.startswith("# study x, tier y\n# second line\n")
    assert tomllib.loads(text) == {
        "a": 1,
        "t": {"y": "z", "u": {"v": 1.5}},
        "only_subtables": {"s": {"k": 1}},
        "empty": {},
        "rows": [{"n": 1}, {"n": 2, "sub": {"q": [1.0]}}],
    }
    with pytest.raises(TypeError):
        dumps({"a": [1, None]})
    with pytest.raises(TypeError):
        dumps({"a": object()})


def test_nest_turns_dotted_keys_into_tables():
    assert nest({"rule.name": "c_ep", "rule.beta": 0.25, "seed": 0}) == {
        "rule": {"name": "c_ep", "beta": 0.25},
        "seed": 0,
    }
    assert tomllib.loads(dumps(nest([("a.b.c", 1), ("a.d", None)]))) == {"a": {"b": {"c": 1}}}
    with pytest.raises(ValueError):
        nest({"a": 1, "a.b": 2})
    with pytest.raises(ValueError):
        nest({"a.b": 2, "a": 1})
