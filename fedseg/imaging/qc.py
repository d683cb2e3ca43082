"""Quality-control pictures: mid slices of every modality with the brain-mask (and tumour) outline.

The picture is one mosaic (rows: modalities; columns: axial, coronal, sagittal) composed in NumPy,
with one-voxel outlines (yellow: brain mask, red: tumour) burnt in, then labelled and saved through
matplotlib's Agg canvas directly (no pyplot global state, safe in worker processes; one image, no
contour tracing, so a case costs a fraction of a second). The file is written atomically.

Arrays are the stored ones, [C, Z, Y, X] in canonical LPS orientation: axial slices are shown with
anterior at the top and the patient's right on the left (radiological view), coronal and sagittal
slices with superior at the top; panels are stretched to the physical voxel aspect. Grey levels are
windowed to the 1st-99th percentile inside the brain.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fedseg.fsutil import atomic_write_bytes

__all__ = ["mid_slices", "mosaic", "write_qc_png"]

_VIEWS = ("axial", "coronal", "sagittal")
_YELLOW = np.array([1.0, 0.85, 0.0])
_RED = np.array([1.0, 0.15, 0.1])


def mid_slices(volume: np.ndarray, centre: Sequence[int]) -> list[np.ndarray]:
    """Return the axial, coronal and sagittal slices of a [Z, Y, X] volume through ``centre``, display-ready
    (coronal and sagittal flipped so superior is at the top)."""
    z, y, x = (int(c) for c in centre)
    return [volume[z], volume[::-1, y, :], volume[::-1, :, x]]


def _centre(mask: np.ndarray) -> tuple[int, int, int]:
    if not mask.any():
        return tuple(s // 2 for s in mask.shape)  # type: ignore[return-value]
    return tuple(int((i.min() + i.max()) // 2) for i in np.nonzero(mask))  # type: ignore[return-value]


def _stretch(panel: np.ndarray, row_mm: float, col_mm: float) -> np.ndarray:
    """Repeat rows/columns (nearest neighbour) so one pixel is about the same size in mm both ways."""
    unit = min(row_mm, col_mm)
    rows = np.round(np.arange(round(panel.shape[0] * row_mm / unit)) * unit / row_mm).astype(int)
    cols = np.round(np.arange(round(panel.shape[1] * col_mm / unit)) * unit / col_mm).astype(int)
    return panel[np.minimum(rows, panel.shape[0] - 1)][:, np.minimum(cols, panel.shape[1] - 1)]


def _edge(mask: np.ndarray) -> np.ndarray:
    """Return the one-pixel inner outline of a 2D boolean mask (4-neighbourhood)."""
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def mosaic(image: np.ndarray, brain_mask: np.ndarray, spacing_xyz: Sequence[float],
           label: np.ndarray | None = None) -> np.ndarray:
    """Return the RGB mosaic (float in [0, 1]) of mid slices of every channel with outlines burnt in."""
    sx, sy, sz = (float(s) for s in spacing_xyz)
    aspects = [(sy, sx), (sz, sx), (sz, sy)]
    centre = _centre(brain_mask)
    inside = brain_mask.astype(bool)
    masks = [_stretch(m, *a) for m, a in zip(mid_slices(inside, centre), aspects)]
    tumour = [_stretch(m, *a) for m, a in zip(mid_slices(label > 0, centre), aspects)] if label is not None else None
    height = max(m.shape[0] for m in masks)
    rows = []
    for channel in image:
        vol = np.asarray(channel, dtype=np.float32)
        values = vol[inside]
        lo, hi = np.percentile(values, [1, 99]) if values.size else (float(vol.min()), float(vol.max()))
        panels = []
        for view, aspect in enumerate(aspects):
            grey = np.clip((_stretch(mid_slices(vol, centre)[view], *aspect) - lo) / max(hi - lo, 1e-6), 0, 1)
            rgb = np.repeat(grey[..., None], 3, axis=2)
            rgb[_edge(masks[view])] = _YELLOW
            if tumour is not None:
                rgb[_edge(tumour[view])] = _RED
            pad = np.zeros((height, rgb.shape[1] + 2, 3))
            pad[: rgb.shape[0], : rgb.shape[1]] = rgb
            panels.append(pad)
        rows.append(np.concatenate(panels, axis=1))
        rows.append(np.zeros((2, rows[-1].shape[1], 3)))
    return np.concatenate(rows[:-1], axis=0)


def write_qc_png(
    path: Path,
    image: np.ndarray,
    brain_mask: np.ndarray,
    *,
    spacing_xyz: Sequence[float],
    modalities: Sequence[str],
    label: np.ndarray | None = None,
    title: str = "",
    dpi: int = 100,
) -> None:
    """Write the QC mosaic of ``image`` [C, Z, Y, X] as a PNG at ``path``, rows named by ``modalities``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    picture = mosaic(image, brain_mask, spacing_xyz, label)
    h, w = picture.shape[:2]
    scale = max(1.0, 600.0 / w)  # small volumes are enlarged so the picture stays readable
    fig = Figure(figsize=(w * scale / dpi + 0.6, h * scale / dpi + 0.5), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.6 * dpi / (w * scale + 0.6 * dpi), 0.02, 1 - 0.6 * dpi / (w * scale + 0.6 * dpi) - 0.01, 0.9))
    ax.imshow(picture, interpolation="nearest", aspect="equal")
    row_h = (h + 2) / len(modalities)
    ax.set_yticks([row_h * (i + 0.5) for i in range(len(modalities))], list(modalities))
    ax.set_xticks([w * (i + 0.5) / 3 for i in range(3)], list(_VIEWS))
    ax.xaxis.tick_top()
    ax.tick_params(length=0, labelsize=8)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        fig.text(0.5, 0.995, f"{title}  (yellow: brain mask, red: tumour)", ha="center", va="top", fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    atomic_write_bytes(Path(path), buffer.getvalue())
