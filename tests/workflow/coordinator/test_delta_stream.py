"""Streaming a round's updates into deltas: chunked sums, clipping, the per-tensor combine, direction cosines."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fedseg.errors import AggregationError
from fedseg.federation.artifact import Kind, TensorSpec, read_artifact
from fedseg.federation.plan import Plan
from fedseg.federation.strategies import Combine, WeightedMean
from fedseg.workflow.coordinator.delta_stream import (
    CHUNK,
    combined_delta,
    consume,
    delta_pass,
    direction_cosines,
    rebuild,
)
from fedseg.workflow.coordinator.round_report import UpdateVerdict
from fedseg.workflow.coordinator.scratch import TensorFile
from tests._aggregate_data import SHAPES, model, write_global, write_update


def _buf() -> np.ndarray:
    return np.empty(CHUNK, dtype=np.float64)


def test_delta_pass_hand_checked(tmp_path: Path) -> None:
    g = {"w": np.array([0.5, 0.5, 0.5], np.float32)}
    with TensorFile(tmp_path / "g.bin", g) as gf:
        x = np.array([1.0, 2.0, 3.0], np.float32)  # delta [0.5, 1.5, 2.5]
        assert delta_pass(x, gf, "w", "full", None, 2.0, _buf()) == pytest.approx(8.75, abs=0)
        out = np.array([10.0, 0.0, -1.0])
        assert delta_pass(x, gf, "w", "full", out, 2.0, _buf()) == 8.75
        np.testing.assert_array_equal(out, [11.0, 3.0, 4.0])
        # a "delta" update already is the delta: the global is not subtracted
        out = np.zeros(3)
        assert delta_pass(x, gf, "w", "delta", out, 1.0, _buf()) == 14.0
        np.testing.assert_array_equal(out, [1.0, 2.0, 3.0])


def test_delta_pass_over_several_chunks_matches_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    shape = (2, CHUNK + 3)  # 2 * CHUNK + 6 elements: three chunks, the last one short
    g = rng.normal(size=shape).astype(np.float32)
    x = rng.normal(size=shape).astype(np.float32)
    with TensorFile(tmp_path / "g.bin", {"big": g}) as gf:
        out = np.ones(shape, dtype=np.float64)
        total = delta_pass(x, gf, "big", "full", out, 0.25, _buf())
    ref = x.astype(np.float64) - g.astype(np.float64)
    assert total == pytest.approx(float(np.sum(ref * ref)), rel=1e-12)
    np.testing.assert_allclose(out, 1.0 + 0.25 * ref, rtol=0, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(x=arrays(np.float32, st.integers(0, 40), elements=st.floats(-1e3, 1e3, width=32)),
       factor=st.floats(-4, 4))
def test_delta_pass_is_exact_float64_delta(x: np.ndarray, factor: float) -> None:
    g = (x[::-1] * 0.5).astype(np.float32)
    with tempfile.TemporaryDirectory() as d, TensorFile(Path(d) / "g.bin", {"t": g}) as gf:
        out = np.zeros(x.shape, dtype=np.float64)
        total = delta_pass(x, gf, "t", "full", out, factor, _buf())
    ref = x.astype(np.float64) - g.astype(np.float64)  # exact: float32 inputs, float64 difference
    assert total == pytest.approx(float(np.sum(ref * ref)), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(out, factor * ref, rtol=1e-15, atol=0)


def _global(tmp_path: Path) -> TensorFile:
    return TensorFile(tmp_path / "g.bin", {"a": np.array([1.0, 1.0], np.float32), "b": np.zeros((1,), np.float32)})


def test_consume_without_clipping_adds_weighted_delta(tmp_path: Path) -> None:
    acc = WeightedMean()
    with _global(tmp_path) as gf:
        v1 = UpdateVerdict(path=tmp_path / "u1", weight=3.0)
        norm = consume({"a": np.array([4.0, 1.0], np.float32), "b": np.array([4.0], np.float32)}, gf, v1,
                       acc=acc, spill=None, clip_norm=0.0)
        assert norm == 5.0 and v1.added and v1.scratch is None  # delta a=[3, 0], b=[4]
        v2 = UpdateVerdict(path=tmp_path / "u2", weight=1.0)
        consume({"a": np.array([2.0, 2.0], np.float32), "b": np.array([0.0], np.float32)}, gf, v2,
                acc=acc, spill=None, clip_norm=0.0)  # delta a=[1, 1], b=[0]
    assert acc.total_weight == 4.0 and acc.count == 2
    np.testing.assert_allclose(acc.pop_mean("a"), [(3 * 3 + 1) / 4, (0 + 1) / 4])
    np.testing.assert_allclose(acc.pop_mean("b"), [3.0])


def test_consume_with_clipping_scales_by_the_whole_norm(tmp_path: Path) -> None:
    acc = WeightedMean()
    with _global(tmp_path) as gf:
        v = UpdateVerdict(path=tmp_path / "u", weight=2.0)
        norm = consume({"a": np.array([4.0, 1.0], np.float32), "b": np.array([4.0], np.float32)}, gf, v,
                       acc=acc, spill=None, clip_norm=1.0)
    assert norm == 5.0 and v.added
    np.testing.assert_allclose(acc.running_sum("a", (2,)), [2.0 * 0.2 * 3.0, 0.0])  # weight x clip (1/5) x delta
    np.testing.assert_allclose(acc.pop_mean("b"), [0.8])


def test_consume_delta_weights_and_norm_below_clip(tmp_path: Path) -> None:
    acc = WeightedMean()
    with _global(tmp_path) as gf:
        v = UpdateVerdict(path=tmp_path / "u", weights="delta")  # weight None counts as 1
        norm = consume({"a": np.array([0.0, 0.6], np.float32), "b": np.array([0.8], np.float32)}, gf, v,
                       acc=acc, spill=None, clip_norm=10.0)
    assert norm == pytest.approx(1.0, rel=1e-7)
    np.testing.assert_allclose(acc.pop_mean("a"), [0.0, 0.6], rtol=1e-7)  # not clipped: the norm is below 10
    assert acc.total_weight == 1.0


def test_consume_spill_only_measures_and_parks_the_update(tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    spill.mkdir()
    with _global(tmp_path) as gf:
        tensors = {"a": np.array([1.0, 3.0], np.float32), "b": np.array([0.0], np.float32)}
        v = UpdateVerdict(path=tmp_path / "u")
        assert consume(tensors, gf, v, acc=None, spill=spill, clip_norm=1.0) == 2.0
        assert not v.added and v.scratch is not None
        with v.scratch as s:
            assert s.path.name == "update-0000.bin"
            np.testing.assert_array_equal(s.read("a"), tensors["a"])
        v2 = UpdateVerdict(path=tmp_path / "u2")
        consume(tensors, gf, v2, acc=None, spill=spill, clip_norm=0.0)
        assert v2.scratch is not None and v2.scratch.path.name == "update-0001.bin"
        v2.scratch.close()


def _spilled(tmp_path: Path, deltas: list[list[float]], g: np.ndarray, *, clip_norm: float = 0.0,
             weights: str = "full") -> list[UpdateVerdict]:
    out = []
    for i, d in enumerate(deltas):
        d64 = np.array(d, dtype=np.float64)
        x = d64 if weights == "delta" else d64 + g
        v = UpdateVerdict(path=tmp_path / f"u{i}", weights=weights, norm=float(np.linalg.norm(d64)))
        v.scratch = TensorFile(tmp_path / f"s{i}.bin", {"t": x.astype(np.float32)})
        out.append(v)
    return out


def test_combined_delta_mean_pops_the_running_sum() -> None:
    acc = WeightedMean()
    acc.add({"t": np.array([2.0, 4.0])}, 1.0)
    acc.add({"t": np.array([4.0, 0.0])}, 3.0)
    got = combined_delta("t", strat=SimpleNamespace(combine=Combine.MEAN), config=None, acc=acc, accepted=[],
                         g=np.zeros(2))
    np.testing.assert_allclose(got, [3.5, 1.0])
    assert acc.names() == []


@pytest.mark.parametrize("weights", ["full", "delta"])
def test_combined_delta_median(tmp_path: Path, weights: str) -> None:
    g = np.array([10.0, -1.0, 0.5], np.float32)
    accepted = _spilled(tmp_path, [[1, -2, 0], [3, 0, 1], [2, 5, -1]], g, weights=weights)
    cfg = SimpleNamespace(clip_norm=0.0, trim_fraction=0.0)
    got = combined_delta("t", strat=SimpleNamespace(combine=Combine.MEDIAN), config=cfg, acc=None,
                         accepted=accepted, g=g)
    assert got.dtype == np.float64 and got.shape == (3,)
    np.testing.assert_array_equal(got, [2.0, 0.0, 0.0])


def test_combined_delta_median_applies_each_update_clip(tmp_path: Path) -> None:
    g = np.zeros((2,), np.float32)
    accepted = _spilled(tmp_path, [[6, 8], [1, 0], [0, 1]], g)  # norms 10, 1, 1; clip 5 halves the first
    cfg = SimpleNamespace(clip_norm=5.0, trim_fraction=0.0)
    got = combined_delta("t", strat=SimpleNamespace(combine=Combine.MEDIAN), config=cfg, acc=None,
                         accepted=accepted, g=g)
    np.testing.assert_allclose(got, [1.0, 1.0])  # medians of [3, 1, 0] and [4, 0, 1]


def test_combined_delta_trimmed_mean(tmp_path: Path) -> None:
    g = np.ones((2, 1), np.float32)
    rows = [[1, 10], [2, -10], [3, 0], [4, 1], [100, 2]]
    accepted = _spilled(tmp_path, rows, g.reshape(-1))  # scratch holds a flat tensor: ranges are flat anyway
    cfg = SimpleNamespace(clip_norm=0.0, trim_fraction=0.2)  # drops 1 from each end of 5
    got = combined_delta("t", strat=SimpleNamespace(combine=Combine.TRIMMED_MEAN), config=cfg, acc=None,
                         accepted=accepted, g=g)
    assert got.shape == (2, 1)
    np.testing.assert_allclose(got.reshape(-1), [(2 + 3 + 4) / 3, (0 + 1 + 2) / 3])


def test_direction_cosines_against_the_coordinate_median(tmp_path: Path) -> None:
    g = np.array([0.5, -0.5], np.float32)
    with TensorFile(tmp_path / "g.bin", {"t": g}) as gf:
        verdicts = _spilled(tmp_path, [[1, 0], [0, 1], [1, 1], [-2, -2]], g)
        # coordinate medians of [1, 0, 1, -2] and [0, 1, 1, -2]: 0.5 and 0.5
        got = direction_cosines(verdicts, gf)
    m = np.array([0.5, 0.5])
    expected = [1 / math.sqrt(2), 1 / math.sqrt(2), 1.0, -1.0]
    for i, d in enumerate([[1, 0], [0, 1], [1, 1], [-2, -2]]):
        assert expected[i] == pytest.approx(np.dot(d, m) / (np.linalg.norm(d) * np.linalg.norm(m)))
    assert got == pytest.approx(expected, abs=1e-12)


def test_direction_cosines_zero_median_or_zero_norm_gives_zero(tmp_path: Path) -> None:
    g = np.zeros(2, np.float32)
    with TensorFile(tmp_path / "g.bin", {"t": g}) as gf:
        verdicts = _spilled(tmp_path, [[1, 0], [-1, 0], [0, 0]], g)  # median [0, 0]
        assert direction_cosines(verdicts, gf) == [0.0, 0.0, 0.0]
    with TensorFile(tmp_path / "g2.bin", {"t": g}) as gf:
        (tmp_path / "x").mkdir()
        more = _spilled(tmp_path / "x", [[1, 1], [2, 2], [0, 0]], g)  # median [1, 1]; the zero delta gets 0
        got = direction_cosines(more, gf)
    assert got[0] == pytest.approx(1.0) and got[1] == pytest.approx(1.0) and got[2] == 0.0


def test_rebuild_sums_the_accepted_updates_again_and_refuses_a_changed_file(tmp_path: Path, plan: Plan,
                                                                            site_keys: dict[str, Any]) -> None:
    g0 = write_global(plan, site_keys, tmp_path / "g.fedseg", model(1.0))
    spec = {n: TensorSpec(s, "float32") for n, s in SHAPES.items()}
    verdicts = []
    for site, value, n in (("site-a", 2.0, 10), ("site-b", 4.0, 30)):
        path = write_update(plan, site_keys, tmp_path / f"{site}.fedseg", site, g0.digest, model(value),
                            num_examples=n)
        art = read_artifact(path, plan, kind=Kind.UPDATE, spec=spec)
        norm = math.sqrt(sum(math.prod(s) for s in SHAPES.values())) * (value - 1.0)
        verdicts.append(UpdateVerdict(path=path, site=site, sha256=art.digest, weight=float(n), norm=norm))
    with TensorFile(tmp_path / "g.bin", g0.tensors) as gf:
        acc = rebuild(verdicts, plan, spec, gf, 0.0, None)
        assert acc.count == 2 and acc.total_weight == 40.0
        np.testing.assert_allclose(acc.pop_mean("enc.bias"), np.full(4, (10 * 1.0 + 30 * 3.0) / 40))
        # clipping uses the norm recorded in the verdict: site-b's delta (norm 3 x sqrt(24)) is cut to site-a's
        acc = rebuild(verdicts, plan, spec, gf, verdicts[0].norm, None)
        np.testing.assert_allclose(acc.pop_mean("enc.bias"), np.full(4, 1.0), rtol=1e-12)
        write_update(plan, site_keys, verdicts[1].path, "site-b", g0.digest, model(5.0), num_examples=30)
        with pytest.raises(AggregationError, match="site-b.fedseg: the file changed during aggregation"):
            rebuild(verdicts, plan, spec, gf, 0.0, None)
