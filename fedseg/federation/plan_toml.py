"""Write a federation plan as commented TOML (the form ``fedseg init`` and ``fedseg plan update`` write)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedseg.errors import ConfigError
from fedseg.fsutil import atomic_write_text

if TYPE_CHECKING:  # pragma: no cover
    from fedseg.federation.plan import Plan

__all__ = ["plan_to_toml", "write_plan"]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {value!r} to TOML")


_COMMENTS = {
    "federation": "Who takes part and for how many rounds. The id is bound into every signed file.",
    "coordinator": "The coordinator signs global models. Compare its key id out of band before trusting it.",
    "sites": "One table per member site; only these keys may sign updates. cases: the site's enrolled "
    "training cases, which bound the example count its updates may claim.",
    "model": "3D U-Net: one stage per entry of widths; strides[i] downsamples into stage i.",
    "training": "Local training per round. patch_size is (z, y, x) voxels, divisible by the stride product. "
    "lr_schedule: constant | cosine | poly; lr_scope: round (the schedule restarts every round) | federation "
    "(one curve over all the rounds). keep_optimizer_state: each site keeps its optimizer moments from its "
    "previous round (a local file; it never leaves the site). drift_correction: none | scaffold (each local step "
    "corrected by the federation's last direction minus the site's own, SCAFFOLD; derived at the site, nothing "
    "more is sent; needs strategy fedavg, clip_norm 0 and no central DP).",
    "aggregation": "strategy: fedavg | fedavgm | fedadam | fedyogi | fedadagrad | median | trimmed-mean. "
    "weighting: examples | uniform | capped (no site above max_share). min_sites: the quorum. "
    "clip_norm, outlier_z and direction_z: 0 turns them off.",
    "preprocessing": "Applied by `fedseg preprocess` at every site; spacing is (x, y, z) mm.",
    "privacy": "mode: off | dp-sgd (patient-level DP-SGD at each site) | central (site-level DP-FedAvg). "
    "noise multipliers 0 = derived from target_epsilon and delta over the planned rounds. See the README.",
    "chain": "This plan update follows the plan whose hash is previous_sha256, signed by that plan's coordinator "
    "key, and governs rounds from from_round on. revoked: keys refused from their from_round on.",
}


def plan_to_toml(plan: Plan) -> str:
    """Return the plan as commented TOML."""
    data = plan.to_dict()
    lines = ["# fedseg federation plan. Distribute it out of band; its hash is bound into every artifact.",
             f"format = {data['format']}", ""]
    for table in ("federation", "coordinator"):
        lines += [f"# {_COMMENTS[table]}", f"[{table}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in data[table].items()]
        lines.append("")
    lines.append(f"# {_COMMENTS['sites']}")
    for site in data["sites"]:
        lines += ["[[sites]]"] + [f"{k} = {_toml_value(v)}" for k, v in site.items()] + [""]
    for table in ("model", "training", "aggregation", "preprocessing", "privacy"):
        if table not in data:
            continue
        lines += [f"# {_COMMENTS[table]}", f"[{table}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in data[table].items()]
        lines.append("")
    if "chain" in data:
        chain = dict(data["chain"])
        revoked = chain.pop("revoked", [])
        lines += [f"# {_COMMENTS['chain']}", "[chain]"] + [f"{k} = {_toml_value(v)}" for k, v in chain.items()] + [""]
        for entry in revoked:
            lines += ["[[chain.revoked]]"] + [f"{k} = {_toml_value(v)}" for k, v in entry.items()] + [""]
    return "\n".join(lines)


def write_plan(plan: Plan, path: Path) -> None:
    """Write ``plan`` as TOML to ``path`` atomically."""
    atomic_write_text(Path(path), plan_to_toml(plan))
