"""The stores' real servers for the tests: Debian's PostgreSQL 15 and moto's standalone S3 server.

Each starts in a temporary folder on a free port and is stopped at the end of the session.
PostgreSQL refuses to run as root, so as root its files belong to ``nobody`` and it runs as that user.
"""

from __future__ import annotations

import contextlib
import glob
import os
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


def _as_unprivileged(command: list[str]) -> list[str]:
    return ["runuser", "-u", UNPRIVILEGED, "--", *command] if os.geteuid() == 0 else command


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

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


@contextlib.contextmanager
def postgres_server() -> Iterator[Postgres]:
    """An empty cluster (trust auth on the loopback, fsync off: test data), its superuser ``postgres``."""
    folder = Path(tempfile.mkdtemp(prefix="voice-pg-"))
    data, log = folder / "data", folder / "postgres.log"
    if os.geteuid() == 0:
        shutil.chown(folder, UNPRIVILEGED)
    initdb = [postgres_bin("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"]
    subprocess.run(_as_unprivileged(initdb), check=True, capture_output=True, cwd=folder)
    port = free_port()
    command = [postgres_bin("postgres"), "-D", str(data), "-p", str(port), "-k", str(folder)]
    command += ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off"]
    with log.open("wb") as out:
        process = subprocess.Popen(_as_unprivileged(command), stdout=out, stderr=subprocess.STDOUT, cwd=folder)
    try:
        wait_for_port(port, process, log)
        yield Postgres(port)
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
