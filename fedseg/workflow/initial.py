"""The coordinator's signed round-0 global: the plan's model with seeded initial weights."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from fedseg.configtools import config_to_dict
from fedseg.errors import PlanError
from fedseg.federation.keys import PrivateKey
from fedseg.federation.plan import Plan
from fedseg.fsutil import refuse_output_overlap

__all__ = ["global_filename", "write_initial_global"]


def global_filename(round_: int) -> str:
    """Return the conventional file name of the global model of ``round_``."""
    return f"global-r{round_:04d}.fedseg"


def write_initial_global(plan: Plan, key: PrivateKey, out_dir: Path, *, seed: int = 0) -> Path:
    """Write the signed round-0 global ``OUT_DIR/global-r0000.fedseg`` with weights seeded by ``seed``."""
    from fedseg.federation.artifact import write_artifact
    from fedseg.federation.manifest import initial_global_manifest
    from fedseg.model.spec import initial_weights

    if key.key_id != plan.coordinator.key_id:
        raise PlanError(f"{key.source}: the round-0 global must be signed by the coordinator "
                        f"{plan.coordinator.id!r} (key id {plan.coordinator.key_id}), got key id {key.key_id}")
    refuse_output_overlap(Path(out_dir) / global_filename(0), {"coordinator key": key.source, "plan": plan.source})
    manifest = initial_global_manifest(signer=plan.coordinator.id, model=config_to_dict(plan.model), seed=seed,
                                       created=datetime.now(timezone.utc),
                                       expiry_days=plan.aggregation.global_expiry_days)
    path = Path(out_dir) / global_filename(0)
    write_artifact(path, manifest=manifest, tensors=initial_weights(plan.model, seed), key=key, plan=plan)
    return path
