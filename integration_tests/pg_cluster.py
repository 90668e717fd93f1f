"""A throwaway PostgreSQL server for tests: its own cluster (initdb) in a temp dir, on a free loopback port.

Uses the machine's PostgreSQL binaries (Debian's /usr/lib/postgresql/<version>/bin, or initdb on PATH).
PostgreSQL refuses to run as root, so when the tests run as root the server runs as `nobody`, owning the temp dir.
The cluster listens on 127.0.0.1 only, with password (SCRAM) auth, and is removed on stop.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

RUN_AS = "nobody"  # any existing non-root user will do; Debian always has this one


def postgres_bindir() -> Path | None:
    """The newest PostgreSQL bin directory on the machine, or None."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if found:
        newest = max(found, key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0)
        return Path(newest).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TempPostgres:
    user = "lms"
    database = "postgres"
    host = "127.0.0.1"

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.password = secrets.token_urlsafe(12) + "@/:"  # characters that must survive a connection URL
        self.port = 0
        self.root: Path | None = None

    def _run(self, *argv: str, timeout: float = 60) -> None:
        prefix = ["runuser", "-u", RUN_AS, "--"] if os.geteuid() == 0 else []
        done = subprocess.run(prefix + [str(self.bindir / argv[0]), *argv[1:]], cwd=self.root, capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode != 0:
            log = (self.root / "server.log").read_text() if self.root and (self.root / "server.log").exists() else ""
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stdout}{done.stderr}{log}")

    def start(self) -> "TempPostgres":
        self.root = Path(tempfile.mkdtemp(prefix="lms-pg-"))
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            owner = pwd.getpwnam(RUN_AS)
            for path in (self.root, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        data = self.root / "data"
        self._run("initdb", "-D", str(data), "-U", self.user, f"--pwfile={pwfile}", "--auth=scram-sha-256",
                  "-E", "UTF8", "--locale=C", "--no-sync")
        self.port = free_loopback_port()
        # fsync off: a test cluster is thrown away; the socket lives in our dir, not /var/run/postgresql.
        options = f"-p {self.port} -k {self.root} -c listen_addresses={self.host} -F"
        self._run("pg_ctl", "-D", str(data), "-l", str(self.root / "server.log"), "-o", options, "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        if self.root is None:
            return
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> "TempPostgres":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
