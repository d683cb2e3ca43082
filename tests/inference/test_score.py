"""The one scorer: a pointwise "model" whose output is the map its input holds, so every Dice is hand-checkable.

The fake network returns logits ``20 * (x[:3] - 0.5)`` voxel by voxel: an input channel of 1 is a
region probability of sigmoid(10) ~ 1, a 0 one of sigmoid(-10) ~ 0. Sliding windows and Gaussian
blending average identical values, so the predicted regions are exactly the first three input channels.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fedseg.errors import DatasetError
from fedseg.inference.predict import PredictOptions
from fedseg.inference.score import CaseScore, ModelScores, score_model
from fedseg.inference.sources import InputCase, PreparedCase
from tests.inference_fixtures import geometry

CPU = PredictOptions(device="cpu")
SHAPE = (4, 4, 4)
PATCH = (2, 2, 2)


class Pointwise(torch.nn.Module):
    """Logits of +10 where an input channel is 1 and -10 where it is 0 (channels 0, 1, 2 = WT, TC, ET)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 20.0 * (x[:, :3] - 0.5)


def _regions_of(label: np.ndarray) -> np.ndarray:
    """Return the WT/TC/ET masks of an internal label map as a float image [3, Z, Y, X]."""
    return np.stack([label > 0, np.isin(label, (1, 3)), label == 3]).astype(np.float32)


def _case(case_id: str, image: np.ndarray, label: np.ndarray | None) -> InputCase:
    return InputCase(case_id, f"{case_id}.h5", lambda: PreparedCase(image, geometry(), "brats2023", label))


def _cube_label() -> np.ndarray:
    """A 2x2x2 tumour: 8 WT voxels, of which 4 TC (label 1 and 3) and 2 ET (label 3)."""
    label = np.zeros(SHAPE, np.uint8)
    label[1:3, 1:3, 1:3] = 2
    label[1, 1:3, 1:3] = 1
    label[1, 1, 1:3] = 3
    return label


def test_a_perfect_map_scores_one_everywhere() -> None:
    label = _cube_label()
    scores = score_model(Pointwise(), [_case("a", _regions_of(label), label)], patch_size=PATCH, options=CPU)
    assert scores.cases == [CaseScore("a", "a.h5", {r: {"dice": 1.0} for r in ("WT", "TC", "ET")})]
    assert scores.mean_dice() == {"WT": 1.0, "TC": 1.0, "ET": 1.0} and scores.failures == []


def test_whole_volume_oedema_against_a_small_tumour() -> None:
    # prediction: WT everywhere (64 voxels), no TC, no ET; reference: 8 WT, 4 TC, 2 ET voxels
    image = np.zeros((4, *SHAPE), np.float32)
    image[0] = 1.0
    scores = score_model(Pointwise(), [_case("a", image, _cube_label())], patch_size=PATCH, options=CPU)
    dice = {r: m["dice"] for r, m in scores.cases[0].metrics.items()}
    assert dice == {"WT": pytest.approx(2 * 8 / (64 + 8)), "TC": 0.0, "ET": 0.0}


def test_empty_regions_follow_the_policy_and_the_mean_is_over_cases() -> None:
    empty_ref = np.zeros(SHAPE, np.uint8)
    nothing = np.zeros((4, *SHAPE), np.float32)
    label = _cube_label()
    cases = [_case("empty", nothing, empty_ref), _case("cube", _regions_of(label), label)]
    brats = score_model(Pointwise(), cases, patch_size=PATCH, options=CPU)
    assert brats.cases[0].metrics["ET"]["dice"] == 1.0  # both empty: 1 under BraTS
    assert brats.mean_dice() == {"WT": 1.0, "TC": 1.0, "ET": 1.0}
    nan = score_model(Pointwise(), cases[:1], patch_size=PATCH, options=CPU, empty="nan")
    assert math.isnan(nan.cases[0].metrics["WT"]["dice"])


def test_full_scoring_adds_every_metric_with_the_same_dice() -> None:
    image = np.zeros((4, *SHAPE), np.float32)
    image[0] = 1.0
    label = _cube_label()
    full = score_model(Pointwise(), [_case("a", image, label)], patch_size=PATCH, options=CPU, full=True)
    wt = full.cases[0].metrics["WT"]
    assert set(wt) == {"dice", "hd95", "sensitivity", "specificity", "pred_ml", "ref_ml"}
    assert wt["dice"] == pytest.approx(2 * 8 / 72)
    assert wt["sensitivity"] == 1.0 and wt["specificity"] == 0.0
    assert wt["pred_ml"] == pytest.approx(64 * 8 / 1000) and wt["ref_ml"] == pytest.approx(8 * 8 / 1000)  # 2 mm voxels


def test_thresholds_of_the_options_decide_the_regions() -> None:
    image = np.zeros((4, *SHAPE), np.float32)
    image[0] = 0.53  # logit 0.6: probability 0.65 -- WT at threshold 0.5, nothing at 0.7
    label = np.ones(SHAPE, np.uint8) * 2
    low = score_model(Pointwise(), [_case("a", image, label)], patch_size=PATCH, options=CPU)
    high = score_model(Pointwise(), [_case("a", image, label)], patch_size=PATCH,
                       options=PredictOptions(device="cpu", thresholds=(0.7, 0.5, 0.5)))
    assert low.cases[0].metrics["WT"]["dice"] == 1.0 and high.cases[0].metrics["WT"]["dice"] == 0.0


def test_a_case_without_label_raises_or_fails_alone() -> None:
    label = _cube_label()
    cases = [_case("nolabel", _regions_of(label), None), _case("ok", _regions_of(label), label)]
    with pytest.raises(DatasetError, match="nolabel.h5: case has no reference label"):
        score_model(Pointwise(), cases, patch_size=PATCH, options=CPU)
    seen: list[tuple[int, int]] = []
    scores = score_model(Pointwise(), cases, patch_size=PATCH, options=CPU, keep_going=True,
                         on_case=lambda done, total: seen.append((done, total)))
    assert [c.case_id for c in scores.cases] == ["ok"]
    assert scores.failures == [("nolabel", "nolabel.h5: case has no reference label to score against")]
    assert seen == [(1, 2), (2, 2)]


def test_no_case_has_no_mean() -> None:
    assert ModelScores().mean_dice() is None
    assert score_model(Pointwise(), [], patch_size=PATCH, options=CPU).mean_dice() is None
