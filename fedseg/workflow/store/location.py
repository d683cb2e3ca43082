"""Where a round store lives: parse a store URL, open its fsspec filesystem, and scrub URLs for messages.

Accepted URLs:

* a folder path, ``file:///path`` — a local or mounted folder (NFS, SMB, a synced drive);
* ``sftp://[user@]host[:port]/path`` — SFTP through ``sshfs`` (asyncssh). Keys come from the SSH agent
  (``SSH_AUTH_SOCK``) and ``~/.ssh/id_*``; the server's host key must be in ``~/.ssh/known_hosts``
  (sshfs alone would accept any host key; fedseg never does);
* ``s3://bucket[/prefix]`` — S3 or an S3-compatible server through ``s3fs``. Credentials and the endpoint
  come from the standard AWS places: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE`` and
  ``~/.aws``, ``AWS_ENDPOINT_URL`` for a non-AWS server.

A password or secret inside the URL is refused (it would end up in shell history, logs and process
lists); :func:`redact` removes any ``user:password@`` from a text before it is logged or shown.
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fedseg.errors import StoreError

__all__ = ["Backend", "Location", "open_filesystem", "parse_location", "redact"]

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/@\s:]*):[^/@\s]*@")


class Backend(str, enum.Enum):
    FOLDER = "folder"
    SFTP = "sftp"
    S3 = "s3"


@dataclass(frozen=True)
class Location:
    """A parsed store URL: backend, host/port/user (SFTP), and the root path inside the filesystem."""

    backend: Backend
    root: str
    host: str | None = None
    port: int | None = None
    user: str | None = None

    @property
    def display(self) -> str:
        """Return the URL as shown to people (never with a password: none is accepted)."""
        if self.backend is Backend.FOLDER:
            return self.root
        if self.backend is Backend.S3:
            return f"s3://{self.root}"
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"sftp://{user}{self.host}{port}{self.root}"


def redact(text: str) -> str:
    """Return ``text`` with the password of every ``scheme://user:password@`` replaced by ``***``."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(text))


def parse_location(url: str) -> Location:
    """Parse a store URL or folder path; StoreError for an unknown scheme or credentials in the URL."""
    text = str(url).strip()
    if not text:
        raise StoreError("--store: expected a folder, sftp://host/path or s3://bucket/prefix, got an empty value")
    if "://" not in text:
        return Location(Backend.FOLDER, str(Path(text).expanduser().absolute()))
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if parts.password is not None:
        raise StoreError(f"--store {redact(text)}: a password in the store URL is refused; use the SSH agent or "
                         "~/.ssh for sftp://, the AWS environment or profile for s3://")
    if parts.query or parts.fragment:
        raise StoreError(f"--store {redact(text)}: expected no ?query or #fragment in a store URL")
    if scheme == "file":
        return Location(Backend.FOLDER, str(Path(parts.path).absolute()))
    if scheme == "sftp":
        if not parts.hostname:
            raise StoreError(f"--store {text}: expected sftp://[user@]host[:port]/path, found no host")
        try:
            port = parts.port
        except ValueError:
            raise StoreError(f"--store {text}: the port is not a number in 1..65535") from None
        path = parts.path or "/"
        return Location(Backend.SFTP, path.rstrip("/") or "/", host=parts.hostname, port=port,
                        user=parts.username or None)
    if scheme == "s3":
        if not parts.hostname or parts.username is not None:
            raise StoreError(f"--store {redact(text)}: expected s3://bucket[/prefix]")
        return Location(Backend.S3, f"{parts.netloc}{parts.path}".rstrip("/"))
    raise StoreError(f"--store {redact(text)}: unknown scheme {scheme!r}; expected a folder, sftp:// or s3://")


def _known_hosts() -> str:
    path = Path("~/.ssh/known_hosts").expanduser()
    if not path.is_file():
        raise StoreError(f"{path}: not found; add the SFTP server's host key there first (e.g. ssh-keyscan HOST "
                         ">> ~/.ssh/known_hosts after checking its fingerprint)")
    return str(path)


def open_filesystem(location: Location) -> Any:
    """Return the fsspec filesystem of ``location`` (connecting, for SFTP); StoreError when it cannot."""
    if location.backend is Backend.FOLDER:
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem()
    if location.backend is Backend.S3:
        from s3fs import S3FileSystem

        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        client = {"endpoint_url": endpoint} if endpoint else {}
        # No listing cache: members poll for files that others write.
        return S3FileSystem(client_kwargs=client, use_listings_cache=False, skip_instance_cache=True)
    from sshfs import SSHFileSystem

    kwargs: dict[str, Any] = {"known_hosts": _known_hosts(), "skip_instance_cache": True}
    if location.port:
        kwargs["port"] = location.port
    if location.user:
        kwargs["username"] = location.user
    try:
        return SSHFileSystem(location.host, **kwargs)
    except Exception as exc:  # asyncssh raises its own hierarchy (host key, auth, connection refused)
        raise StoreError(f"{location.display}: cannot connect ({redact(str(exc)) or type(exc).__name__})") from None
