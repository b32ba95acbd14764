"""A throwaway PostgreSQL server for tests: initdb into a temporary folder, started, stopped and removed.

The server listens on 127.0.0.1 at a free port (password login, scram-sha-256) and on a
unix socket in its own folder (the superuser, trusted, for setting up roles and
databases); fsync is off, nothing of it outlives the test session. PostgreSQL refuses
to run as root, so under root (as in CI) initdb and pg_ctl run as the ``postgres``
system user, which owns the folder.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "postgres"


def find_bin() -> Path | None:
    """The folder of ``pg_ctl`` and ``initdb``: on PATH, else the newest ``/usr/lib/postgresql/N/bin`` (Debian puts
    them there, off PATH); None when PostgreSQL's server is not installed."""
    on_path = shutil.which("pg_ctl")
    if on_path and (Path(on_path).resolve().parent / "initdb").exists():
        return Path(on_path).resolve().parent
    found = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "pg_ctl").exists() and (p / "initdb").exists()]
    found.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found else None


def why_not() -> str:
    """Why no server can be started here ("" when one can)."""
    if find_bin() is None:
        return "no PostgreSQL server binaries (pg_ctl, initdb) on PATH or in /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' system user to run the server as (PostgreSQL refuses root)"
        if shutil.which("runuser") is None:
            return "running as root without runuser to start the server as the 'postgres' user"
    return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running throwaway server; ``url(user, db)`` is what a unit would put in ``[verification] store``."""

    folder: Path
    bin: Path
    port: int

    @property
    def socket_dir(self) -> Path:
        return self.folder

    def url(self, user: str, database: str) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def admin(self, database: str = "postgres"):  # noqa: ANN201 - a psycopg connection
        """A superuser connection (autocommit) over the unix socket."""
        import psycopg

        return psycopg.connect(host=str(self.socket_dir), port=self.port, user=SUPERUSER, dbname=database, autocommit=True)

    def stop(self) -> None:
        _run([str(self.bin / "pg_ctl"), "stop", "-D", str(self.folder / "data"), "-m", "immediate", "-w"], check=False)
        shutil.rmtree(self.folder, ignore_errors=True)


def _run(command: list[str], check: bool = True) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)


def start() -> Server:
    """initdb and start a server; ``RuntimeError`` (with the server's log) if it does not come up."""
    bin_dir = find_bin()
    assert bin_dir is not None, why_not()
    folder = Path(tempfile.mkdtemp(prefix="gridwatch-pg-"))  # short: a unix socket path has at most 107 bytes
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    try:
        _run([str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", SUPERUSER, "-E", "UTF8", "--locale=C",
              "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"])
        log = ""
        for _ in range(3):  # a port found free may be taken by another process before the server binds it
            port = free_port()
            options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder} "
                       "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=20 "
                       "-c shared_buffers=16MB")
            started = _run([str(bin_dir / "pg_ctl"), "start", "-D", str(folder / "data"), "-w", "-t", "60",
                            "-l", str(folder / "server.log"), "-o", options], check=False)
            if started.returncode == 0:
                return Server(folder, bin_dir, port)
            log = (folder / "server.log").read_text(errors="replace") if (folder / "server.log").exists() else started.stderr
            if not re.search(r"could not bind|address already in use", log, re.IGNORECASE):
                break
        raise RuntimeError(f"PostgreSQL did not start:\n{log[-2000:]}")
    except BaseException:
        _run([str(bin_dir / "pg_ctl"), "stop", "-D", str(folder / "data"), "-m", "immediate"], check=False)
        shutil.rmtree(folder, ignore_errors=True)
        raise
