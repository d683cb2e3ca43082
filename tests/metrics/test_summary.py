"""summarize / describe and the EvaluationResult report type."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fedseg.metrics import METRICS, REGIONS, CaseFailure, CaseResult, EvaluationResult, describe, flat_row, summarize


def _row(dice: float) -> dict[str, dict[str, float]]:
    return {r: {m: (dice if m == "dice" else 1.0) for m in METRICS} for r in REGIONS}


def test_describe_by_hand() -> None:
    d = describe(np.array([1.0, 2.0, 3.0, 4.0, math.nan]))
    assert d["n"] == 4 and d["mean"] == 2.5 and d["median"] == 2.5
    assert d["std"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert d["q25"] == 1.75 and d["q75"] == 3.25
    one = describe(np.array([5.0]))
    assert one["mean"] == 5.0 and math.isnan(one["std"]) and one["n"] == 1
    none = describe(np.array([math.nan]))
    assert none["n"] == 0 and math.isnan(none["mean"])


def test_summarize_structure_and_nan_awareness() -> None:
    rows = [_row(0.5), _row(1.0), _row(math.nan)]
    s = summarize(rows)
    assert list(s) == list(REGIONS)
    assert set(s["ET"]) == set(METRICS)
    assert s["TC"]["dice"]["mean"] == 0.75 and s["TC"]["dice"]["n"] == 2
    assert s["WT"]["hd95"]["n"] == 3
    assert summarize([])["WT"]["dice"]["n"] == 0


def test_result_json_and_flat_rows() -> None:
    case = CaseResult("c1", _row(math.nan), pred="p.nii.gz", truth="t.nii.gz")
    result = EvaluationResult(cases=[case], failures=[CaseFailure("c2", "bad")], settings={"empty": "nan"})
    assert not result.ok
    doc = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert doc["cases"][0]["metrics"]["WT"]["dice"] is None
    assert doc["failures"] == [{"case": "c2", "message": "bad"}]
    row = flat_row(case)
    assert row["case"] == "c1" and row["WT_dice"] == "" and row["ET_hd95"] == "1.0"
    assert EvaluationResult(cases=[case]).ok
