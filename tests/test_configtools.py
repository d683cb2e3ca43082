"""Config dataclasses to and from plain mappings: conversions, unknown keys, enums, tuples, round trips."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedseg.configs.model import ModelConfig
from fedseg.configtools import config_from_mapping, config_to_dict, require
from fedseg.errors import ConfigError


class Colour(str, enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Inner:
    n: int = 1
    colour: Colour = Colour.RED


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    rate: float = 0.5
    flag: bool = False
    sizes: tuple[int, ...] = (1, 2)
    triple: tuple[float, float, float] = (1.0, 1.0, 1.0)
    pairs: tuple[tuple[int, int], ...] = ((0, 0),)
    maybe: int | None = None
    choice: Colour | None = None
    anything: Any = None
    inner: Inner = field(default_factory=Inner)


@dataclass(frozen=True)
class Needs:
    must: int


def test_require() -> None:
    require(True, "table", "never shown")
    with pytest.raises(ConfigError, match=r"^table: must be positive$"):
        require(False, "table", "must be positive")


def test_empty_mapping_gives_the_defaults() -> None:
    assert config_from_mapping(Outer, {}, "outer") == Outer()


def test_conversions() -> None:
    got = config_from_mapping(Outer, {"name": "y", "rate": 2, "flag": True, "sizes": [3], "triple": [1, 2.5, 3],
                                      "pairs": [[1, 2], (3, 4)], "maybe": 7, "choice": "blue",
                                      "anything": {"k": [1]}, "inner": {"colour": "blue"}}, "outer")
    assert got == Outer(name="y", rate=2.0, flag=True, sizes=(3,), triple=(1.0, 2.5, 3.0), pairs=((1, 2), (3, 4)),
                        maybe=7, choice=Colour.BLUE, anything={"k": [1]}, inner=Inner(n=1, colour=Colour.BLUE))
    assert type(got.rate) is float and type(got.triple[0]) is float
    assert isinstance(got.sizes, tuple) and isinstance(got.pairs[0], tuple)
    assert got.choice is Colour.BLUE and got.inner.colour is Colour.BLUE
    assert config_from_mapping(Outer, {"maybe": None, "choice": None}, "outer") == Outer()
    assert config_from_mapping(Outer, {"sizes": []}, "outer").sizes == ()


def test_unknown_keys_are_named_with_the_expected_ones() -> None:
    with pytest.raises(ConfigError, match=r"^outer: unknown setting\(s\) typo, zz; expected some of name, rate, "):
        config_from_mapping(Outer, {"zz": 1, "typo": 2, "name": "ok"}, "outer")
    with pytest.raises(ConfigError, match=r"^outer\.inner: unknown setting\(s\) m; expected some of n, colour$"):
        config_from_mapping(Outer, {"inner": {"m": 1}}, "outer")


@pytest.mark.parametrize(("data", "message"), [
    ({"name": 3}, r"outer\.name: expected a string, got 3"),
    ({"rate": "fast"}, r"outer\.rate: expected a number, got 'fast'"),
    ({"rate": True}, r"outer\.rate: expected a number, got True"),  # a bool is not a number here
    ({"flag": 1}, r"outer\.flag: expected true or false, got 1"),
    ({"sizes": 3}, r"outer\.sizes: expected a list, got 3"),
    ({"sizes": [1, 2.5]}, r"outer\.sizes\[1\]: expected an integer, got 2\.5"),
    ({"sizes": [False]}, r"outer\.sizes\[0\]: expected an integer, got False"),
    ({"triple": [1, 2]}, r"outer\.triple: expected 3 values, got 2"),
    ({"pairs": [[1, 2], [3]]}, r"outer\.pairs\[1\]: expected 2 values, got 1"),
    ({"maybe": "7"}, r"outer\.maybe: expected an integer, got '7'"),
    ({"choice": "green"}, r"outer\.choice: expected one of red, blue, got 'green'"),
    ({"inner": [1]}, r"outer\.inner: expected a table, got list"),
    ({"inner": {"n": "one"}}, r"outer\.inner\.n: expected an integer, got 'one'"),
    ({"inner": {"colour": "RED"}}, r"outer\.inner\.colour: expected one of red, blue, got 'RED'"),  # values, not names
])
def test_bad_values_name_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_mapping(Outer, data, "outer")


def test_a_missing_required_field_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^needs: .*must"):
        config_from_mapping(Needs, {}, "needs")
    assert config_from_mapping(Needs, {"must": 2}, "needs") == Needs(2)


def test_the_config_class_validates_its_numbers() -> None:
    with pytest.raises(ConfigError, match=r"^model: convs_per_stage must lie in 1\.\.4$"):
        config_from_mapping(ModelConfig, {"convs_per_stage": 9}, "model")


def test_config_to_dict_is_plain_data() -> None:
    d = config_to_dict(Outer(choice=Colour.BLUE, pairs=((1, 2),)))
    assert d == {"name": "x", "rate": 0.5, "flag": False, "sizes": [1, 2], "triple": [1.0, 1.0, 1.0],
                 "pairs": [[1, 2]], "maybe": None, "choice": "blue", "anything": None,
                 "inner": {"n": 1, "colour": "red"}}
    assert type(d["choice"]) is str and type(d["inner"]["colour"]) is str


def test_model_config_round_trip() -> None:
    cfg = ModelConfig(widths=(4, 8), kernels=((1, 3, 3), (3, 3, 3)), strides=((1, 1, 1), (1, 2, 2)))
    d = config_to_dict(cfg)
    assert d["kernels"] == [[1, 3, 3], [3, 3, 3]]
    assert config_from_mapping(ModelConfig, d, "model") == cfg


finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=30, deadline=None)
@given(st.builds(Outer, name=st.text(max_size=5), rate=finite, flag=st.booleans(),
                 sizes=st.lists(st.integers(), max_size=4).map(tuple),
                 triple=st.tuples(finite, finite, finite),
                 pairs=st.lists(st.tuples(st.integers(), st.integers()), max_size=3).map(tuple),
                 maybe=st.none() | st.integers(), choice=st.none() | st.sampled_from(Colour),
                 inner=st.builds(Inner, n=st.integers(), colour=st.sampled_from(Colour))))
def test_round_trip_property(cfg: Outer) -> None:
    assert config_from_mapping(Outer, config_to_dict(cfg), "outer") == cfg


def test_a_huge_integer_for_a_float_is_a_config_error() -> None:
    # JSON (dataset.json, manifests) carries integers of any size; float(10**400) raises OverflowError
    with pytest.raises(ConfigError, match=r"outer\.rate"):
        config_from_mapping(Outer, {"rate": 10**400}, "outer")
