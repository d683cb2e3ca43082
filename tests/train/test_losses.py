"""Region targets and the soft Dice + BCE loss, checked by hand."""

from __future__ import annotations

import torch

from fedseg.train.losses import dice_bce_loss, region_targets, soft_dice_loss


def test_region_targets_nest_wt_tc_et() -> None:
    label = torch.tensor([[0, 1, 2, 3]])
    t = region_targets(label)
    assert t.shape == (1, 3, 4)
    assert t[0].tolist() == [[0, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 1]]


def test_soft_dice_is_zero_for_a_perfect_prediction_and_one_for_a_disjoint_one() -> None:
    targets = torch.tensor([[[1.0, 0.0, 0.0, 1.0]] * 3])
    perfect = (targets * 2 - 1) * 50
    assert float(soft_dice_loss(perfect, targets)) < 1e-6
    assert abs(float(soft_dice_loss(-perfect, targets)) - 1.0) < 1e-5
    empty = torch.zeros_like(targets)
    assert float(soft_dice_loss(torch.full_like(targets, -50.0), empty)) < 1e-5  # both empty: no loss


def test_dice_bce_by_hand() -> None:
    # logits 0 everywhere: p = 0.5, BCE = ln 2; WT target half the voxels: Dice = 2*1/(2+1)
    label = torch.tensor([[2, 0]])
    logits = torch.zeros(1, 3, 2)
    dice_wt = 2 * 0.5 / (1.0 + 1.0)
    dice_empty = (0 + 1e-5) / (1.0 + 1e-5)
    expected = float(torch.log(torch.tensor(2.0))) + 1 - (dice_wt + 2 * dice_empty) / 3
    assert abs(float(dice_bce_loss(logits, label)) - expected) < 1e-5
