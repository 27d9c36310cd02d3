"""The stores' real servers for the tests: Debian's PostgreSQL 15 and moto's standalone S3 server.

Each starts in a temporary folder on a free port and is stopped at the end of the session.
PostgreSQL refuses to run as root, so as root its files belong to ``nobody`` and it runs as that user
(Popen's ``user``/``group``: the server is our child, stopped by our signal).
"""

from __future__ import annotations

import contextlib
import glob
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from support import free_port

POSTGRES_BINS = "/usr/lib/postgresql/*/bin"
UNPRIVILEGED = "nobody"
MOTO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


def postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"{POSTGRES_BINS}/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not in {POSTGRES_BINS}: `make setup` installs postgresql-15")
    return found[-1]


def _unprivileged() -> dict[str, object]:
    """Popen's arguments that run a command as UNPRIVILEGED when we are root (the process itself, not a
    wrapper such as runuser: signals reach PostgreSQL, and it never outlives the tests)."""
    if os.geteuid() != 0:
        return {}
    return {"user": UNPRIVILEGED, "group": grp.getgrgid(pwd.getpwnam(UNPRIVILEGED).pw_gid).gr_name, "extra_groups": []}


def wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}: {log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"no server on port {port} after {timeout_s} s: {log.read_text()[-3000:]}")


@dataclass
class Postgres:
    port: int
    process: subprocess.Popen | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        """Stops the server now (PostgreSQL's fast shutdown: clients' connections are closed)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=15)


@contextlib.contextmanager
def postgres_server() -> Iterator[Postgres]:
    """An empty cluster (trust auth on the loopback, fsync off: test data), its superuser ``postgres``."""
    folder = Path(tempfile.mkdtemp(prefix="voice-pg-"))
    data, log = folder / "data", folder / "postgres.log"
    if os.geteuid() == 0:
        shutil.chown(folder, UNPRIVILEGED)
    initdb = [postgres_bin("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"]
    subprocess.run(initdb, check=True, capture_output=True, cwd=folder, **_unprivileged())  # type: ignore[call-overload]
    port = free_port()
    command = [postgres_bin("postgres"), "-D", str(data), "-p", str(port), "-k", str(folder)]
    command += ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=folder, **_unprivileged())  # type: ignore[call-overload]
    try:
        wait_for_port(port, process, log)
        yield Postgres(port, process)
    finally:
        process.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class MotoS3:
    endpoint: str

    @property
    def env(self) -> dict[str, str]:
        return {**MOTO_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}


@contextlib.contextmanager
def moto_s3_server() -> Iterator[MotoS3]:
    """moto's standalone server: the S3 protocol over HTTP, in memory."""
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="voice-moto-")) / "moto.log"
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process, log)
        yield MotoS3(f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(log.parent, ignore_errors=True)


def create_bucket(s3: MotoS3, bucket: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=s3.endpoint, **_boto_credentials())
    client.create_bucket(Bucket=bucket)


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": MOTO_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": MOTO_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": MOTO_CREDENTIALS["AWS_REGION"],
    }
