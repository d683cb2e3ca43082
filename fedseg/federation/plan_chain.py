"""The signed plan chain: plan updates as new plan versions, each signed by the previous coordinator key.

Like TUF root rotation: ``plan.toml`` (version 1, distributed out of band) is the root of trust; version
N+1 names version N's hash (``[chain] previous_sha256``) and is signed by version N's coordinator key,
so rotating the coordinator key itself is signed by the old key, and only the new key signs after it.

A plan update is one file, ``plan-vNNNN.toml`` (N >= 2): the plan's TOML followed by one signature line::

    # fedseg-plan-signature <key id> <base64 Ed25519 signature>

The signature covers ``b"fedseg-plan-v1\\x00"`` + every byte before that line. Reading a plan update
checks, in this order, and stops at the first failure: the size (at most 1 MiB), the signature line, that
its key id is the previous version's coordinator key, the signature; only then is the TOML parsed, and
then its ``[chain]`` table: version = previous + 1, previous_sha256 = the previous version's hash, the
same federation id, ``from_round`` not before the previous version's, every earlier revocation kept.

Files live beside the root: ``fed/plan.toml``, ``fed/plan-v0002.toml``, ... :func:`load_chain` verifies
them all from the root and returns the newest version (or the one named), which carries the whole chain
(:attr:`Plan.versions`). Whoever already trusts a version (a site's state, the coordinator's ledger)
refuses a chain that does not contain it unchanged (:func:`check_trusted`: rollback, fork).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from fedseg.errors import PlanError, SignatureError, StateError
from fedseg.federation.keys import PrivateKey
from fedseg.federation.plan import Plan, parse_plan_bytes, plan_to_toml, read_plan_bytes
from fedseg.fsutil import atomic_write_bytes

__all__ = ["PLAN_SIGNING_CONTEXT", "ROOT_NAME", "check_trusted", "extend_chain", "is_signed_plan", "load_chain",
           "load_chain_files", "sign_plan", "update_filename", "update_version", "verify_update",
           "write_plan_update"]

PLAN_SIGNING_CONTEXT = b"fedseg-plan-v1\x00"
ROOT_NAME = "plan.toml"
_SIGNATURE_PREFIX = b"# fedseg-plan-signature "
_UPDATE_NAME = re.compile(r"plan-v(\d{4,6})\.toml")


def update_filename(version: int) -> str:
    """Return the file name of plan version ``version`` (2 on): ``plan-v0002.toml``."""
    return f"plan-v{version:04d}.toml"


def update_version(name: str) -> int | None:
    """Return the version a plan update's file name states, or None when it is not such a name."""
    match = _UPDATE_NAME.fullmatch(name)
    return int(match.group(1)) if match else None


def sign_plan(plan: Plan, key: PrivateKey) -> bytes:
    """Return the signed file bytes of ``plan``: its TOML and the signature line."""
    body = plan_to_toml(plan).rstrip("\n").encode("utf-8") + b"\n"
    signature = base64.b64encode(key.sign(PLAN_SIGNING_CONTEXT + body))
    return body + _SIGNATURE_PREFIX + key.key_id.encode("ascii") + b" " + signature + b"\n"


def write_plan_update(plan: Plan, key: PrivateKey, path: Path) -> None:
    """Sign ``plan`` with ``key`` and write it to ``path`` atomically."""
    atomic_write_bytes(Path(path), sign_plan(plan, key))


def _split_signed(raw: bytes) -> tuple[bytes, str, bytes] | None:
    """Return (signed body, key id, signature) of a signed plan file, or None when it has no signature line."""
    if not raw.endswith(b"\n"):
        return None
    head, _, last = raw[:-1].rpartition(b"\n")
    if not last.startswith(_SIGNATURE_PREFIX):
        return None
    parts = last[len(_SIGNATURE_PREFIX):].split(b" ")
    if len(parts) != 2:
        return None
    try:
        return head + b"\n", parts[0].decode("ascii"), base64.b64decode(parts[1], validate=True)
    except (UnicodeDecodeError, binascii.Error, ValueError):
        return None


def is_signed_plan(raw: bytes) -> bool:
    """Return whether ``raw`` ends with a plan signature line (a plan update, not a root)."""
    return _split_signed(raw) is not None


def verify_update(path: Path, previous: Plan) -> Plan:
    """Verify the plan update at ``path`` as the successor of ``previous`` (see the module docstring)."""
    path = Path(path)
    raw = read_plan_bytes(path)
    signed = _split_signed(raw)
    if signed is None:
        raise SignatureError(f"{path}: a plan update must end with its line '# fedseg-plan-signature KEYID "
                             "SIGNATURE'; an unsigned plan update is refused")
    body, key_id, signature = signed
    coordinator = previous.coordinator
    if key_id != coordinator.key_id:
        raise SignatureError(f"{path}: signed by key {key_id}; plan v{previous.version + 1} must be signed by "
                             f"coordinator {coordinator.id!r} key {coordinator.key_id} of plan v{previous.version}")
    if len(signature) != 64 or not coordinator.public_key.verify(signature, PLAN_SIGNING_CONTEXT + body):
        raise SignatureError(f"{path}: the plan signature by {coordinator.id!r} does not verify; the file was altered")
    plan = parse_plan_bytes(body, path)
    link = plan.link
    if link is None:
        raise PlanError(f"{path}: a plan update needs a [chain] table (version, previous_sha256, from_round)")
    if link.version != previous.version + 1:
        raise PlanError(f"{path}: plan version {link.version}; expected version {previous.version + 1} after "
                        f"v{previous.version} (a version skipped, repeated or rolled back)")
    if link.previous_sha256 != previous.sha256:
        raise PlanError(f"{path}: names previous plan {link.previous_sha256[:12]}, but v{previous.version} is "
                        f"{previous.sha256[:12]}; it does not follow this chain")
    if plan.federation_id != previous.federation_id:
        raise PlanError(f"{path}: federation id {plan.federation_id}; the chain's is {previous.federation_id}")
    if link.from_round < previous.from_round:
        raise PlanError(f"{path}: takes effect from round {link.from_round}, before v{previous.version}'s round "
                        f"{previous.from_round}")
    kept = set(previous.link.revoked) if previous.link is not None else set()
    if not kept <= set(link.revoked):
        raise PlanError(f"{path}: drops a revocation of plan v{previous.version}; revocations are permanent")
    return plan


def _ordered(paths: Sequence[Path]) -> list[tuple[int, Path]]:
    out = []
    for path in paths:
        version = update_version(Path(path).name)
        if version is None or version < 2:
            raise PlanError(f"{path}: a plan update is named plan-vNNNN.toml with NNNN >= 0002")
        out.append((version, Path(path)))
    return sorted(out)


def extend_chain(plan: Plan, updates: Sequence[Path], *, stop_at: Path | None = None) -> Plan:
    """Verify ``updates`` on top of ``plan``'s chain; return the newest version (or ``stop_at``'s).

    A file of a version the chain already holds must hold that very version (else PlanError: a fork).
    """
    versions = list(plan.versions)
    stopped = stop_at is None
    for number, path in _ordered(updates):
        if number <= versions[-1].version:
            known = versions[number - 1]
            if verify_update(path, versions[number - 2]).sha256 != known.sha256:
                raise PlanError(f"{path}: another plan v{number} than the one already verified "
                                f"({known.sha256[:12]}); two versions of one number: a fork of the chain")
        else:
            nxt = verify_update(path, versions[-1])
            if nxt.version != number:
                raise PlanError(f"{path}: the file name says version {number}, the plan says {nxt.version}")
            versions.append(nxt)
        if stop_at is not None and path.resolve() == Path(stop_at).resolve():
            stopped = True
            break
    if not stopped:
        raise PlanError(f"{stop_at}: not a version of the chain of {versions[0].source}")
    if len(versions) == 1:
        return versions[0]
    lineage = tuple(replace(v, lineage=()) for v in versions)
    chosen = next(v for v in lineage if v.version == versions[-1].version)
    return replace(chosen, lineage=lineage)


def _load_root(path: Path) -> Plan:
    raw = read_plan_bytes(path)
    root = parse_plan_bytes(raw, path)
    if root.link is not None or is_signed_plan(raw):
        raise PlanError(f"{path}: the root of a plan chain is version 1 (no [chain] table, no signature); "
                        f"this is plan v{root.version}")
    return root


def load_chain_files(root: Path, updates: Sequence[Path], *, stop_at: Path | None = None) -> Plan:
    """Verify the chain of root ``root`` and the plan update files ``updates``; return its newest version."""
    return extend_chain(_load_root(Path(root)), updates, stop_at=stop_at)


def _siblings(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if update_version(p.name) is not None]
    except OSError as exc:
        raise PlanError(f"{folder}: cannot list the plan folder ({exc.strerror})") from None


def load_chain(path: Path) -> Plan:
    """Load a plan with its chain: a folder (``plan.toml`` + updates), the root file, or one update file.

    A root file or folder gives the newest version of the chain found beside the root; an update file
    gives that version (verified from the root in its folder).
    """
    path = Path(path)
    if path.is_dir():
        return load_chain_files(path / ROOT_NAME, _siblings(path))
    raw = read_plan_bytes(path)
    if is_signed_plan(raw):
        return load_chain_files(path.parent / ROOT_NAME, _siblings(path.parent), stop_at=path)
    return load_chain_files(path, _siblings(path.parent))


def check_trusted(plan: Plan, version: int, sha256: str, where: str) -> None:
    """Refuse ``plan``'s chain unless it holds the already trusted plan ``version`` with hash ``sha256``."""
    newest = plan.versions[-1]
    if newest.version < version:
        raise StateError(f"{where}: plan v{version} ({sha256[:12]}) was already accepted, this chain ends at "
                         f"v{newest.version}; rollback to an older plan version refused")
    held = next((v for v in plan.versions if v.version == version), None)
    if held is None or held.sha256 != sha256:
        raise StateError(f"{where}: plan v{version} was accepted as {sha256[:12]}, this chain holds "
                         f"{held.sha256[:12] if held else 'no such version'}; a forked plan chain is refused")
