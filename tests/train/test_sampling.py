"""Patch sampling from HDF5 cases: boxes, padding, foreground centring, determinism per (seed, step)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from fedseg.data.dataset import load_dataset
from fedseg.train.loop import _batches
from fedseg.train.sampling import PatchBatches, index_case, patch_box, read_patch
from tests._train_data import make_dataset


def _cases(tmp_path: Path, shape=(20, 20, 20), n=2):
    ds = load_dataset(make_dataset(tmp_path / "d", train=n, val=0, shape=shape))
    return [index_case(ds.reader(c), np.random.default_rng(0)) for c in ds.split("train")]


def test_patch_box_centres_and_clamps() -> None:
    rng = np.random.default_rng(0)
    starts, offsets = patch_box((20, 20, 20), (8, 8, 8), (10, 0, 19), rng)
    assert starts == [6, 0, 12] and offsets == [0, 0, 0]
    starts, offsets = patch_box((5, 20, 20), (8, 8, 8), None, rng)
    assert starts[0] == 0 and 0 <= offsets[0] <= 3 and all(0 <= s <= 12 for s in starts[1:])


def test_small_case_is_zero_padded(tmp_path: Path) -> None:
    case = _cases(tmp_path, shape=(6, 20, 10), n=1)[0]
    image, label = read_patch(case, (8, 8, 16), [0, 4, 0], [1, 0, 3])
    assert image.shape == (4, 8, 8, 16) and label.shape == (8, 8, 16)
    assert np.all(image[:, 0] == 0) and np.all(image[:, 7] == 0)  # z: 1 before, 1 after
    assert np.all(image[..., :3] == 0) and np.all(image[..., 13:] == 0)  # x: 3 before, 3 after
    np.testing.assert_array_equal(label[1:7, :, 3:13], case.reader.label()[:, 4:12, :])


def test_foreground_patches_are_centred_on_tumour(tmp_path: Path) -> None:
    cases = _cases(tmp_path)
    batches = PatchBatches(cases, patch_size=(8, 8, 8), batch_size=4, foreground_fraction=1.0, seed=1,
                           flip=False, intensity=False, total_steps=5)
    for step in range(5):
        _, label = batches.sample(step)
        assert (label[:, 3:5, 3:5, 3:5] > 0).any(axis=(1, 2, 3)).all()


def test_batches_depend_only_on_seed_and_step(tmp_path: Path) -> None:
    cases = _cases(tmp_path)
    kw = dict(patch_size=(16, 16, 16), batch_size=2, foreground_fraction=0.5, flip=True, intensity=True,
              total_steps=4)
    a = PatchBatches(cases, seed=3, **kw)
    b = copy.deepcopy(a)  # what a DataLoader worker gets: readers without their HDF5 handles
    assert all(c.reader._file is None for c in b.cases)
    for step in (2, 0, 3):
        np.testing.assert_array_equal(a.sample(step)[0], b.sample(step)[0])
    assert not np.array_equal(a.sample(0)[0], a.sample(1)[0])
    assert not np.array_equal(a.sample(0)[0], PatchBatches(cases, seed=4, **kw).sample(0)[0])
    for c in cases:
        c.reader.close()
    in_process = [x.numpy() for x, _ in _batches(a, 1, 3, workers=0, pin=False)]
    in_worker = [x.numpy() for x, _ in _batches(a, 1, 3, workers=1, pin=False)]
    for x, y in zip(in_process, in_worker, strict=True):
        np.testing.assert_array_equal(x, y)


def test_cases_held_in_memory_give_the_batches_read_from_the_files(tmp_path: Path) -> None:
    kw = dict(patch_size=(8, 16, 16), batch_size=3, foreground_fraction=0.5, seed=5, flip=True, intensity=True,
              total_steps=6)
    for shape in ((6, 20, 24), (12, 20, 24)):  # smaller than the patch along z (padded), then larger everywhere
        cases = _cases(tmp_path / str(shape[0]), shape=shape, n=2)
        from_files = PatchBatches(cases, **kw)
        held = PatchBatches(cases, memory_bytes=10**9, **kw)
        one_case = int(np.prod(shape)) * (4 * 4 + 1)
        capped = PatchBatches(cases, memory_bytes=one_case, **kw)  # room for one of the two cases
        for step in (0, 3, 0, 5, 3):  # augmentation must never change the held arrays
            want = from_files.sample(step)
            for got in (held.sample(step), capped.sample(step)):
                np.testing.assert_array_equal(got[0], want[0])
                np.testing.assert_array_equal(got[1], want[1])
        assert held._held == 2 * one_case and capped._held == one_case and from_files._held == 0
        assert copy.deepcopy(held)._arrays == {}  # a loader worker reads from the files
    # 1 patch of 8x16x16 per run from each 12x20x24 case: reading the case whole would read more than its patches
    few = PatchBatches(cases, memory_bytes=10**9, **{**kw, "batch_size": 1, "total_steps": 2})
    few.sample(0)
    assert few._held == 0
