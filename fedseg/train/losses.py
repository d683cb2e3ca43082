"""Region targets and the soft Dice + BCE loss over the WT/TC/ET sigmoid outputs.

Region-based training as in the BraTS winners since Isensee et al. (BrainLes 2018): the network predicts
the nested regions WT = {1, 2, 3}, TC = {1, 3} and ET = {3} of the internal labels with one sigmoid each,
and the loss is binary cross-entropy plus a soft Dice computed over the whole batch per region ("batch
Dice", Milletari et al. 2016 / nnU-Net), so a patch without tumour does not produce a 0/0 Dice. The
smoothing term 1e-5 keeps a region that is empty in both prediction and target at loss ~0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fedseg.labels import REGIONS, region_masks

__all__ = ["dice_bce_loss", "region_targets", "soft_dice_loss"]

SMOOTH = 1e-5


def region_targets(label: torch.Tensor) -> torch.Tensor:
    """Return float targets [B, 3, ...] (WT, TC, ET) from an internal label map [B, ...] (0..3)."""
    masks = region_masks(label.long())
    return torch.stack([masks[r] for r in REGIONS], dim=1).float()


def soft_dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Return 1 - mean over regions of the batch soft Dice of sigmoid(logits) against ``targets``."""
    probs = torch.sigmoid(logits.float())
    dims = (0, *range(2, logits.ndim))
    intersection = (probs * targets).sum(dims)
    denominator = probs.sum(dims) + targets.sum(dims)
    dice = (2.0 * intersection + SMOOTH) / (denominator + SMOOTH)
    return 1.0 - dice.mean()


def dice_bce_loss(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Return BCE-with-logits + soft Dice loss of region ``logits`` [B, 3, ...] against internal ``label``."""
    targets = region_targets(label)
    bce = F.binary_cross_entropy_with_logits(logits.float(), targets)
    return bce + soft_dice_loss(logits, targets)
