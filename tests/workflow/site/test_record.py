"""The typed checkpoint record: the JSON fedseg has always written, parsed back, refused when broken."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedseg.errors import TrainingError
from fedseg.train import checkpoint as ckpt
from fedseg.workflow.site.record import RNG_SCHEME, CheckpointRecord

RECORD = CheckpointRecord(round=3, site="site-a", federation_id="f", plan_sha256="p" * 64, parent_sha256="g" * 64,
                          training={"seed": 7}, model={"widths": [4]}, total_steps=20, num_examples=5, seed=7)
# what train-local wrote before the record had a type (fedseg 0.1), right after validate-before
OLD_META = {"round": 3, "site": "site-a", "federation_id": "f", "plan_sha256": "p" * 64, "parent_sha256": "g" * 64,
            "training": {"seed": 7}, "model": {"widths": [4]}, "total_steps": 20, "num_examples": 5,
            "rng": {"scheme": RNG_SCHEME, "seed": 7}, "step": 0, "complete": False, "losses": [], "seconds": 0.0,
            "metrics": {"val_dice_before": {"WT": 0.1}, "val_dice_after": None}}


def test_to_meta_is_the_old_json() -> None:
    fresh = CheckpointRecord(**{**RECORD.__dict__, "val_dice_before": {"WT": 0.1}})
    assert fresh.to_meta() == OLD_META
    done = CheckpointRecord(**{**fresh.__dict__, "complete": True, "data_wait_share": 0.25})
    assert done.to_meta()["data_wait_share"] == 0.25 and "data_wait_share" not in fresh.to_meta()


def test_round_trip_through_the_checkpoint_folder(tmp_path: Path) -> None:
    record = CheckpointRecord(**{**RECORD.__dict__, "step": 4, "losses": (1.0, 0.5), "seconds": 2.5,
                                 "val_dice_before": {"WT": 0.1}, "val_dice_after": {"WT": 0.2},
                                 "complete": True, "data_wait_share": 0.1})
    ckpt.save_checkpoint(tmp_path, record.to_meta(), {"w": np.zeros(2, np.float32)}, None)
    meta, _ = ckpt.load_checkpoint(tmp_path)
    assert CheckpointRecord.from_meta(meta, tmp_path) == record
    assert CheckpointRecord.from_meta(OLD_META, tmp_path).val_dice_after is None


def test_train_loss_is_the_mean_of_the_last_tenth() -> None:
    assert CheckpointRecord(**{**RECORD.__dict__, "losses": tuple(range(20))}).train_loss == 18.5
    assert CheckpointRecord(**{**RECORD.__dict__, "losses": (4.0,)}).train_loss == 4.0
    assert RECORD.train_loss is None


@pytest.mark.parametrize("broken", [
    {k: v for k, v in OLD_META.items() if k != "round"},
    {**OLD_META, "round": "3"},
    {**OLD_META, "rng": {}},
    {**OLD_META, "training": None},
])
def test_a_broken_record_is_a_training_error(broken, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="checkpoint record is incomplete or malformed"):
        CheckpointRecord.from_meta(broken, tmp_path / "checkpoint.json")
