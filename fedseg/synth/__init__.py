"""Synthetic multi-modal brain-tumour scans with skull, for demos, tests and benchmarks.

    from fedseg.labels import Layout
    from fedseg.synth import PROFILES, make_case, write_cases

    case = make_case(np.random.default_rng(0), PROFILES[1], case_id="x", size_scale=0.5)
    write_cases(Path("raw"), cases=4, profile=2, layout=Layout.BRATS2023, seed=1)
    write_cases(Path("raw4"), cases=4, profile=4)  # scanner-like: face, neck, 5 mm slices, motion

See :mod:`fedseg.synth.head` for the realistic head (profiles 3-5, or ``anatomy="realistic"``) and
:mod:`fedseg.synth.acquisition` for partial volume and orientation codes.
See :mod:`fedseg.synth.case` for the geometry conventions (T1ce is the reference; the recorded
misalignment is the fixed=T1ce -> moving transform) and :mod:`fedseg.synth.writer` for the layouts
and the ground-truth files written beside each case.
"""

from __future__ import annotations

from fedseg.synth.case import SynthCase, make_case, motion_transform
from fedseg.synth.phantom import Tissue
from fedseg.synth.profiles import PROFILES, GridSpec, HeadModel, SiteProfile
from fedseg.synth.writer import case_files, case_ids, check_outputs, truth_record, write_case, write_cases

__all__ = [
    "PROFILES",
    "GridSpec",
    "HeadModel",
    "SiteProfile",
    "SynthCase",
    "Tissue",
    "case_files",
    "case_ids",
    "check_outputs",
    "make_case",
    "motion_transform",
    "truth_record",
    "write_case",
    "write_cases",
]
