"""Store URLs on the three backends, each against a real server started here on localhost."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._store_servers import make_bucket, s3_env, s3_server, sftp_server

_COUNTER = itertools.count()


@pytest.fixture(scope="session")
def store_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """Start the SFTP and S3 servers once; point HOME and the AWS variables at their throwaway credentials."""
    base = tmp_path_factory.mktemp("servers")
    sftp_root, home = base / "sftp-root", base / "home"
    sftp_root.mkdir()
    with pytest.MonkeyPatch.context() as mp, sftp_server(sftp_root, home) as port, s3_server() as endpoint:
        mp.setenv("HOME", str(home))
        mp.delenv("SSH_AUTH_SOCK", raising=False)
        for name, value in s3_env(endpoint).items():
            mp.setenv(name, value)
        make_bucket(endpoint, "fedseg-test")
        yield {"sftp_port": port, "sftp_root": sftp_root, "s3": endpoint}


@pytest.fixture(params=["folder", "sftp", "s3"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store on each backend."""
    n = next(_COUNTER)
    if request.param == "folder":
        return str(tmp_path / "store")
    servers = request.getfixturevalue("store_servers")
    if request.param == "sftp":
        return f"sftp://127.0.0.1:{servers['sftp_port']}/store-{n}"
    return f"s3://fedseg-test/store-{n}"
