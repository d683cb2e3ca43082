"""`fedseg inspect`: show an artifact's manifest and tensors and, given the plan, whether it verifies.

Exit codes: 0 only when the file verifies against ``--plan``. Without a plan the manifest is read from
the header alone (the payload is not opened), shown with a warning that nothing was verified, and the
exit code is 1, because nothing about the file has been established. A file that fails verification
is still described (from its unverified header, when that parses) with the reason, and exits 1.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from fedseg.cli._console import error_line, print_json, stdout, warn


def _tensor_rows(shapes: dict[str, Any], dtype: str) -> list[dict[str, Any]]:
    rows = []
    for name in sorted(shapes):
        shape = [int(n) for n in shapes[name]] if isinstance(shapes[name], (list, tuple)) else []
        rows.append({"name": name, "shape": shape, "dtype": dtype, "numel": math.prod(shape)})
    return rows


def _render(file: Path, manifest: dict[str, Any], key_id: str, rows: list[dict[str, Any]], verified: bool,
            reason: str | None, file_size: int) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = stdout()
    label = "[bold green]verified[/]" if verified else "[bold red]NOT verified[/]"
    console.print(f"[bold]{escape(str(file))}[/]  {label}", highlight=False)
    info = Table.grid(padding=(0, 2))
    digest = manifest.get("payload_sha256")
    fields = [
        ("kind", manifest.get("kind")), ("federation", manifest.get("federation_id")),
        ("plan sha256", manifest.get("plan_sha256")), ("plan version", manifest.get("plan_version", 1)),
        ("round", manifest.get("round")),
        ("signer", f"{manifest.get('signer')} (key {key_id})"), ("parent", manifest.get("parent_sha256")),
        ("digest", digest), ("weights", manifest.get("weights")), ("dtype", manifest.get("dtype")),
        ("sizes", f"payload {manifest.get('payload_bytes')} B, file {file_size} B, "
                  f"{sum(r['numel'] for r in rows)} values in {len(rows)} tensors"),
        ("examples", manifest.get("num_examples")), ("strategy", manifest.get("strategy")),
        ("created", manifest.get("created_at")), ("expires", manifest.get("expires_at")),
        ("software", manifest.get("software")),
    ]
    for key, value in fields:
        if value is not None:
            info.add_row(key, escape(str(value)))
    for contributor in manifest.get("contributors") or []:
        info.add_row("contributor", escape(str(contributor)))
    for name, value in sorted((manifest.get("metrics") or {}).items()):
        info.add_row(f"metric {name}", escape(str(value)))
    console.print(info)
    table = Table("tensor", "shape", "dtype", "numel", title=None if verified else "tensors (as declared)")
    for row in rows:
        table.add_row(escape(row["name"]), str(tuple(row["shape"])), row["dtype"], f"{row['numel']:,}")
    console.print(table)


def inspect(
    file: Annotated[Path, typer.Argument(help="A .fedseg artifact.", exists=True, dir_okay=False)],
    plan: Annotated[
        Path | None, typer.Option("--plan", help="Plan to verify against (signature, binding, payload).",
                                  exists=True, dir_okay=False)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show an artifact's manifest and tensors; with --plan, verify it (exit 0 only when it verifies).

    Example: fedseg inspect site-a-r0001.fedseg --plan fed/plan.toml
    """
    from fedseg.errors import ArtifactError
    from fedseg.federation.artifact import read_envelope_unverified
    from fedseg.federation.plan import load_plan
    from fedseg.workflow.site.received import read_global, read_update

    loaded_plan = load_plan(plan) if plan is not None else None  # a bad plan is an error, not a verdict
    envelope = read_envelope_unverified(file)  # raises when not even the envelope parses
    manifest, verified, reason = envelope.manifest, False, "not verified: give --plan PLAN to verify"
    dtype = str(manifest.get("dtype"))
    declared = manifest.get("tensors") if isinstance(manifest.get("tensors"), dict) else {}
    rows = _tensor_rows(declared, dtype)
    if loaded_plan is not None:
        # exactly the checks train-local (globals) and aggregate (updates) run on the file itself
        reader = read_global if manifest.get("kind") == "global" else read_update
        try:
            artifact = reader(loaded_plan, file)
        except ArtifactError as exc:
            reason = f"not verified: {exc}"
        else:
            verified, reason, manifest = True, None, artifact.manifest
            rows = _tensor_rows({k: v.shape for k, v in artifact.tensors.items()}, dtype)
    if as_json:
        print_json({"file": str(file), "verified": verified, "reason": reason, "key_id": envelope.key_id,
                    "file_bytes": envelope.file_size, "manifest": manifest, "tensors": rows})
    else:
        _render(file, manifest, envelope.key_id, rows, verified, reason, envelope.file_size)
    if not verified:
        if loaded_plan is None:
            warn("the manifest above is UNVERIFIED (header only, payload not opened); give --plan PLAN to verify")
        else:
            error_line(reason or "not verified")
        raise typer.Exit(1)
