"""Raw and site-dataset inputs of `fedseg predict`, collected by the workflow (the raw path is tested end to end in
tests/inference/test_predict.py and tests/cli/test_predict.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedseg.errors import DatasetError
from fedseg.workflow.model_io import inference_spec
from fedseg.workflow.predict_inputs import collect_inputs
from tests.inference_fixtures import tiny_plan


def test_a_missing_input_is_refused(plan, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="nowhere: input not found"):
        collect_inputs([tmp_path / "nowhere"], inference_spec(tiny_plan(plan)))
