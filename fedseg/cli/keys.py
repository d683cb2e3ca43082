"""`fedseg keys new` and `fedseg keys show`: member key pairs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from fedseg.cli._console import print_json, stdout
from fedseg.errors import KeyFileError

app = typer.Typer(help="Create and show Ed25519 member keys.", no_args_is_help=True)


def passphrase_from_env(var: str | None) -> bytes | None:
    """Return the passphrase held in environment variable ``var`` (never echoed), or None."""
    if var is None:
        return None
    value = os.environ.get(var)
    if not value:
        raise KeyFileError(f"--passphrase-env {var}: the environment variable is unset or empty")
    return value.encode("utf-8")


@app.command("new")
def new(
    name: Annotated[str, typer.Argument(help="Member id, e.g. site-a; files NAME.key and NAME.pub.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the key files.")] = Path("."),
    passphrase_env: Annotated[
        str | None, typer.Option("--passphrase-env", help="Encrypt the private key with the passphrase in this env var.")
    ] = None,
) -> None:
    """Create an Ed25519 key pair: NAME.key (private, mode 0600) and NAME.pub (share it).

    Example: fedseg keys new site-a --out keys/
    """
    from fedseg.federation.keys import generate_keypair, load_public_key
    from fedseg.federation.plan import ID_PATTERN

    if not ID_PATTERN.fullmatch(name):
        raise KeyFileError(f"key name {name!r} must match [a-z0-9][a-z0-9_-]{{0,62}} (it becomes a member id)")
    private_path, public_path = generate_keypair(name, out, passphrase=passphrase_from_env(passphrase_env))
    key_id = load_public_key(public_path).key_id
    console = stdout()
    console.print(f"private key: {private_path}  (keep it at this site, mode 0600)")
    console.print(f"public key:  {public_path}  (send it to the coordinator)")
    console.print(f"key id:      {key_id}")


@app.command("show")
def show(
    file: Annotated[Path, typer.Argument(help="A .pub file, or a private key file.", exists=True, dir_okay=False)],
    passphrase_env: Annotated[str | None, typer.Option("--passphrase-env", help="Passphrase env var for an encrypted private key.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print a key's id (derived from the public key bytes) and its public line.

    Example: fedseg keys show site-a.pub
    """
    from fedseg.federation.keys import load_private_key, load_public_key

    passphrase = passphrase_from_env(passphrase_env)
    key = load_private_key(file, passphrase).public_key if passphrase else load_public_key(file)
    if as_json:
        print_json({"file": str(file), "key_id": key.key_id, "public_key": key.to_text()})
        return
    console = stdout()
    console.print(f"key id:     {key.key_id}")
    console.print(f"public key: {key.to_text()}", highlight=False)
