"""The demo's hospitals: synthetic raw cases with skull per site, preprocessed as each site would.

Shared by ``fedseg demo`` and ``scripts/fl_vs_cds.py --make-sites`` so the campaign's sites are the demo's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fedseg.errors import ConfigError

if TYPE_CHECKING:
    from fedseg.configs.preprocess import PreprocessConfig
    from fedseg.workflow.demo import DemoSettings

__all__ = ["LAYOUTS", "demo_preprocessing", "preprocess_site", "synthesize_site"]

LAYOUTS = ("brats2021", "brats2023", "nnunet")


def demo_preprocessing(s: DemoSettings) -> PreprocessConfig:
    """Return the demo's preprocessing settings.

    The phantoms are heads scaled by ``size_scale``: the QC gate's absolute volume bounds scale with them
    (its brain-share-of-the-head check does not depend on size).
    """
    from fedseg.configs.preprocess import PreprocessConfig, SkullStrip

    qc_brain_ml = tuple(round(v * s.size_scale**3, 1) for v in PreprocessConfig().qc_brain_ml)
    return PreprocessConfig(spacing=(s.spacing_mm,) * 3, val_fraction=0.2, test_fraction=0.2,
                            skull_strip=SkullStrip(s.skull_strip), qc_brain_ml=qc_brain_ml)


def synthesize_site(raw: Path, index: int, site: str, s: DemoSettings) -> None:
    """Write site number ``index``'s raw cases into ``raw``: its own profile (index mod 3), layout and seed."""
    from fedseg.labels import Layout
    from fedseg.synth import write_cases

    write_cases(raw, cases=s.cases_per_site, profile=index % 3, layout=Layout(LAYOUTS[index % 3]),
                seed=s.seed * 100 + index, size_scale=s.size_scale, prefix=f"{site[-1].upper()}")


def preprocess_site(raw: Path, data: Path, site: str, preprocessing: PreprocessConfig) -> None:
    """Preprocess a site's raw cases into ``data``; ConfigError naming the cases that failed or were flagged.

    Cases run in parallel on every available core (the outputs are byte-identical to one worker's).
    """
    from fedseg.workflow.preprocess.build import available_cores, build_dataset

    report = build_dataset(raw, data, preprocessing, jobs=available_cores())
    if report.failed or report.flagged:
        bad = report.failed + report.flagged
        raise ConfigError(f"{site}: preprocessing failed or flagged {', '.join(o.case_id for o in bad)}")
