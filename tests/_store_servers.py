"""Real store servers on localhost for the store tests: an asyncssh SFTP server and moto's S3 server.

Each runs in a background thread of the test process. The SFTP server gets a throwaway host key and
authorizes a throwaway client key; both live in a temporary HOME (``~/.ssh/id_ed25519`` and
``~/.ssh/known_hosts``), the standard places fedseg reads, so no credential ever appears in a URL.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def make_ssh_home(home: Path) -> tuple[object, Path]:
    """Write a client key into ``home/.ssh``; return the server host key and the authorized_keys file."""
    import asyncssh

    ssh = home / ".ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    client = asyncssh.generate_private_key("ssh-ed25519")
    client.write_private_key(str(ssh / "id_ed25519"))
    os.chmod(ssh / "id_ed25519", 0o600)
    client.write_public_key(str(ssh / "authorized_for_test"))
    return asyncssh.generate_private_key("ssh-ed25519"), ssh / "authorized_for_test"


@contextmanager
def sftp_server(root: Path, home: Path) -> Iterator[int]:
    """Serve ``root`` over SFTP on 127.0.0.1 (the port is yielded); ``home/.ssh`` trusts it."""
    import asyncssh

    host_key, authorized = make_ssh_home(home)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, object] = {}

    class _Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

    async def start() -> None:
        box["server"] = await asyncssh.listen(
            "127.0.0.1", 0, server_factory=_Server, server_host_keys=[host_key],
            authorized_client_keys=str(authorized), allow_scp=False,
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=os.fsencode(root)))
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30), "the SFTP test server did not start"
    server = box["server"]
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    pub = host_key.export_public_key().decode().strip()  # type: ignore[attr-defined]
    (home / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{port} {pub}\n")
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(server.close)  # type: ignore[attr-defined]
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@contextmanager
def s3_server() -> Iterator[str]:
    """Run moto's S3 server on 127.0.0.1; yield its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def s3_env(endpoint: str) -> dict[str, str]:
    """Return the AWS environment a client needs for the moto server (throwaway credentials)."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_SESSION_TOKEN": "testing"}


def make_bucket(endpoint: str, name: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=name)
