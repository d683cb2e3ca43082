"""Training patches read straight from the per-case HDF5 files, with foreground oversampling.

A share ``foreground_fraction`` of the patches is centred on a tumour voxel (class first, chosen
uniformly among the classes present in the case, then a voxel of that class, so the small enhancing
tumour is seen as often as oedema; after nnU-Net's class-balanced oversampling); the rest start at a
uniformly random position. Along an axis where the case is smaller than the patch, the case is placed
at a random offset inside the patch and the rest is zero-padded (image 0 = the z-scored background,
label 0), so a patch larger than every case still trains.

Randomness is a pure function of ``(seed, step)``: every batch draws from its own
``numpy.random.Generator`` seeded with ``[seed, step]``, so the batch of step k is the same whichever
worker builds it and whether or not the run was resumed.

In-process training (no loader workers) keeps whole cases in memory as they are first drawn, up to
``memory_bytes`` (:data:`CASE_MEMORY_BYTES` by default), when the run draws enough patches per case that
their voxels add up to at least the case's (reading it whole is then no more than its patches would read):
a patch is then a slice of the array instead of an HDF5 read, the same voxels (on the demo's sites, 10 ms
saved per patch, a tenth of a CPU step).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedseg.data.dataset import CaseReader
from fedseg.errors import DatasetError

__all__ = ["CaseIndex", "PatchBatches", "index_case", "patch_box", "read_patch"]

#: At most this many voxel coordinates are kept per class and case for foreground sampling.
MAX_COORDS_PER_CLASS = 20_000

#: Bytes of whole cases in-process training keeps in memory (about 20 BraTS cases at 1 mm, cropped).
CASE_MEMORY_BYTES = 1024**3


@dataclass
class CaseIndex:
    """A training case: its reader, spatial shape and a sample of voxel coordinates per tumour class."""

    reader: CaseReader
    shape: tuple[int, int, int]
    foreground: list[np.ndarray]  # one int32 [N, 3] array per class present (labels 1, 2, 3)


def index_case(reader: CaseReader, rng: np.random.Generator) -> CaseIndex:
    """Read a case's label once and keep a random sample of tumour voxel coordinates per class."""
    if not reader.has_label:
        raise DatasetError(f"{reader.path}: a training case needs a label")
    label = reader.label()
    classes = []
    for value in (1, 2, 3):
        coords = np.argwhere(label == value).astype(np.int32)
        if len(coords) > MAX_COORDS_PER_CLASS:
            coords = coords[rng.choice(len(coords), MAX_COORDS_PER_CLASS, replace=False)]
        if len(coords):
            classes.append(coords)
    return CaseIndex(reader=reader, shape=tuple(int(s) for s in label.shape), foreground=classes)  # type: ignore[arg-type]


def patch_box(shape: Sequence[int], patch: Sequence[int], centre: Sequence[int] | None,
              rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """Return (start in the case, offset in the patch) per axis for one patch.

    With a ``centre`` the patch is centred on it and shifted to stay inside the case; without one the
    start is uniform. Where the case is smaller than the patch, start is 0 and the case sits at a
    uniformly random offset in the patch.
    """
    starts, offsets = [], []
    for axis, (size, p) in enumerate(zip(shape, patch)):
        if size <= p:
            starts.append(0)
            offsets.append(int(rng.integers(0, p - size + 1)))
            continue
        if centre is None:
            start = int(rng.integers(0, size - p + 1))
        else:
            start = int(np.clip(int(centre[axis]) - p // 2, 0, size - p))
        starts.append(start)
        offsets.append(0)
    return starts, offsets


def read_patch(case: CaseIndex, patch: Sequence[int], starts: Sequence[int], offsets: Sequence[int],
               arrays: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read image [C, *patch] float32 and label [*patch] uint8, zero-padded where the case is smaller.

    ``arrays`` (the case's whole image and label, in memory) are sliced instead of reading the file.
    """
    region = tuple(slice(s, s + min(p, n)) for s, p, n in zip(starts, patch, case.shape))
    if arrays is None:
        image = case.reader.image(region)  # type: ignore[arg-type]
        label = case.reader.label(region)  # type: ignore[arg-type]
    else:
        image, label = arrays[0][(slice(None), *region)].copy(), arrays[1][region].copy()
    if tuple(label.shape) == tuple(patch):
        return image, label
    out_image = np.zeros((image.shape[0], *patch), dtype=np.float32)
    out_label = np.zeros(tuple(patch), dtype=np.uint8)
    place = tuple(slice(o, o + n) for o, n in zip(offsets, label.shape))
    out_image[(slice(None), *place)] = image
    out_label[place] = label
    return out_image, out_label


class PatchBatches:
    """A map-style dataset whose item ``k`` is the whole batch of optimizer step ``k``.

    Picklable (``CaseReader`` drops its HDF5 handle when pickled), so DataLoader workers reopen their
    own handles. Items are ``(image float32 [B, C, *patch], label uint8 [B, *patch])`` as tensors.
    """

    def __init__(self, cases: Sequence[CaseIndex], *, patch_size: Sequence[int], batch_size: int,
                 foreground_fraction: float, seed: int, flip: bool, intensity: bool, total_steps: int,
                 memory_bytes: int = 0) -> None:
        if not cases:
            raise DatasetError("no training cases to sample patches from")
        self.cases = list(cases)
        self.patch_size = tuple(int(p) for p in patch_size)
        self.batch_size = batch_size
        self.foreground_fraction = foreground_fraction
        self.seed = seed
        self.flip = flip
        self.intensity = intensity
        self.total_steps = total_steps
        self.memory_bytes = memory_bytes
        self._arrays: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}  # None: decided to read from the file
        self._held = 0

    def __len__(self) -> int:
        return self.total_steps

    def sample(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the NumPy batch of ``step`` (a pure function of seed and step)."""
        rng = np.random.default_rng([self.seed, step])
        pairs = [self.patch(self.cases[int(rng.integers(len(self.cases)))], rng) for _ in range(self.batch_size)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    def patch(self, case: CaseIndex, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Return one augmented patch (image [C, *patch], label [*patch]) of ``case`` drawn with ``rng``."""
        from fedseg.train.augment import augment_intensity, random_flip

        centre = None
        if case.foreground and rng.random() < self.foreground_fraction:
            coords = case.foreground[int(rng.integers(len(case.foreground)))]
            centre = coords[int(rng.integers(len(coords)))]
        starts, offsets = patch_box(case.shape, self.patch_size, centre, rng)
        image, label = read_patch(case, self.patch_size, starts, offsets, self._in_memory(case))
        if self.flip:
            image, label = random_flip(image, label, rng)
        if self.intensity:
            image = augment_intensity(image, rng)
        return image, label

    def _in_memory(self, case: CaseIndex) -> tuple[np.ndarray, np.ndarray] | None:
        """Return the case's whole (image, label) when held, or None to read it from the file.

        Decided once per case, when it is first drawn: held if it still fits ``memory_bytes`` and the run's
        patches from it would read at least its voxels.
        """
        key = id(case)
        if key not in self._arrays:
            voxels = int(np.prod(case.shape))
            draws = self.total_steps * self.batch_size / len(self.cases)  # patches expected from each case
            size = voxels * (4 * case.reader.num_channels + 1)
            if self._held + size > self.memory_bytes or draws * int(np.prod(self.patch_size)) < voxels:
                self._arrays[key] = None
            else:
                self._arrays[key] = (case.reader.image(), case.reader.label())
                self._held += size
        return self._arrays[key]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_arrays"], state["_held"] = {}, 0  # a loader worker reads from the files
        state["memory_bytes"] = 0
        return state

    def __getitem__(self, step: int):  # noqa: ANN204 - returns torch tensors
        import torch

        image, label = self.sample(int(step))
        return torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(np.ascontiguousarray(label))
