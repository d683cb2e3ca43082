"""`fedseg synth`: synthetic raw scans with skull (T1, T1ce, T2, FLAIR, labels) for demos and tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from fedseg.cli._console import case_progress, print_json, stdout
from fedseg.labels import Layout


def synth(
    out: Annotated[Path, typer.Argument(help="Output folder (created if missing).")],
    cases: Annotated[int, typer.Option("--cases", "-n", min=1, max=100000, help="Number of cases to write.")],
    profile: Annotated[int, typer.Option("--profile", "-p", help="Site profile K (0 iso/co-registered, 1 axial 3 mm RAS, 2 sagittal 5 mm; scanner-like heads with face and neck: 3 sagittal 1 mm T1 + 3 mm T2/FLAIR, 4 axial 1x1x5 mm, 5 axial 0.7x0.7x6 mm).")] = 0,
    # A plain string (checked below): importing fedseg.synth for its Enum would make `fedseg --help` slow.
    anatomy: Annotated[str | None, typer.Option("--anatomy", help="Head model: simple, or realistic (skin, fat, muscle, eyes, sinuses, neck; partial volume; head pose). Default: the profile's (realistic for 3-5).")] = None,
    layout: Annotated[Layout, typer.Option("--layout", help="Raw layout to write: brats2021, brats2023 or nnunet.", case_sensitive=False)] = Layout.BRATS2021,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed; the same seed writes byte-identical files.")] = 0,
    size_scale: Annotated[float, typer.Option("--size-scale", min=0.1, max=2.0, help="Shrink (or grow) head and grid; 0.5 for quick tests.")] = 1.0,
    prefix: Annotated[str | None, typer.Option("--prefix", help="Case id prefix (default SYN<profile>); ids are <prefix>_<nnnn>.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite cases that already exist.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Write synthetic multi-modal brain-tumour scans with skull, labels and ground truth.

    Example: fedseg synth raw/ --cases 8 --profile 2 --layout brats2023 --seed 1
    Scanner-like heads: fedseg synth raw/ --cases 8 --profile 4  (or --profile 0 --anatomy realistic)
    """

    from fedseg.synth import PROFILES, HeadModel, check_outputs, write_cases

    try:
        head = None if anatomy is None else HeadModel(anatomy.lower())
    except ValueError:
        raise typer.BadParameter(f"expected simple or realistic, got {anatomy!r}", param_hint="--anatomy") from None

    check_outputs(out, cases=cases, profile=profile, layout=layout, prefix=prefix, force=force)
    started = time.perf_counter()
    with case_progress("[bold]synth[/] {task.description}", transient=False, eta=True) as bar:
        task = bar.add_task(f"profile {profile}", total=cases)

        def advance(done: int, total: int, case_id: str) -> None:
            bar.update(task, completed=done, description=case_id)

        paths = write_cases(
            out,
            cases=cases,
            profile=profile,
            layout=layout,
            seed=seed,
            size_scale=size_scale,
            prefix=prefix,
            progress=advance,
            force=force,
            anatomy=head,
        )
    seconds = time.perf_counter() - started
    summary = {
        "out": str(out),
        "cases": len(paths),
        "profile": profile,
        "anatomy": (PROFILES[profile].head if head is None else head).value,
        "layout": layout.value,
        "seed": seed,
        "size_scale": size_scale,
        "seconds": round(seconds, 3),
    }
    if as_json:
        print_json(summary)
        return
    stdout().print(
        f"wrote {len(paths)} case(s) to {out} (profile {profile}, layout {layout.value}, seed {seed}) in {seconds:.1f} s",
        highlight=False,
    )
