"""Fixtures of the inference tests: a tiny verified model with its dataset, and a perfect fake network."""

from __future__ import annotations

import pytest

from fedseg.inference import predict as predict_mod
from fedseg.inference import score as score_mod
from fedseg.workflow.model_io import load_global_model
from tests.inference_fixtures import perfect_probabilities, stored_label, tiny_plan, write_global, write_site_dataset


@pytest.fixture
def small(plan, site_keys, tmp_path):
    """(plan, verified model, global path, dataset folder)."""
    p = tiny_plan(plan)
    path = write_global(p, site_keys["coordinator"], tmp_path / "global.fedseg")
    return p, load_global_model(p, path), path, write_site_dataset(tmp_path / "data", conventions=("brats2021", "brats2023"))


@pytest.fixture
def perfect(monkeypatch):
    """Replace the network by probabilities that reproduce the stored label exactly."""
    fake = lambda *a, **k: perfect_probabilities(stored_label())  # noqa: E731
    monkeypatch.setattr(predict_mod, "predict_probabilities", fake)
    monkeypatch.setattr(score_mod, "predict_probabilities", fake)

