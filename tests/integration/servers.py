"""Real servers for integration tests, started on loopback in a temporary directory.

- ``free_port()``: a free TCP port on 127.0.0.1.
- ``MotoServer``: ``moto_server`` from the test venv (a real S3/AWS API over HTTP).
- ``PostgresServer``: a throw-away cluster of Debian's PostgreSQL (initdb + pg_ctl), run as the
  ``postgres`` user when the tests run as root (PostgreSQL refuses root).
- ``wait_http(url)``: poll until a URL answers.

Every start fails with a message that says what is missing; nothing is skipped.
"""

from __future__ import annotations

import glob
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 60, proc: subprocess.Popen | None = None, ready: bool = False) -> None:
    """Return once ``url`` answers any HTTP status (with ``ready``: a 2xx); raise naming the URL on timeout or process exit.

    A readiness endpoint such as Prometheus's ``/-/ready`` answers 503 while it starts: pass ``ready=True`` for those.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)  # loopback only
            return
        except urllib.error.HTTPError:
            if not ready:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not become ready within {timeout} s") from None
            time.sleep(0.3)
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"the process serving {url} exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout} s") from None
            time.sleep(0.3)


class MotoServer:
    """``with MotoServer() as moto: moto.url``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> MotoServer:
        binary = pathlib.Path(sys.executable).parent / "moto_server"
        if not binary.exists():
            raise RuntimeError(f"{binary} is missing: run scripts/setup.sh (moto[server] is pinned in requirements.txt)")
        self.proc = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_http(self.url + "/moto-api/", timeout=30, proc=self.proc)
        except RuntimeError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def postgres_bindir() -> pathlib.Path:
    """Binaries of the newest Debian PostgreSQL installed (``postgresql`` package)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("Debian's PostgreSQL is not installed: apt-get install postgresql")
    return pathlib.Path(found[-1]).parent


class PostgresServer:
    """A throw-away PostgreSQL cluster: ``with PostgresServer(user, password) as pg: pg.port``.

    Lives in its own temporary directory (removed on exit), listens on 127.0.0.1 only, on a
    free port, with password (scram) authentication. The superuser is ``user``;
    ``create_database`` makes databases it owns.
    """

    def __init__(self, user: str, password: str) -> None:
        self.base = pathlib.Path(tempfile.mkdtemp(prefix="mlops-pg-"))
        self.user, self.password = user, password
        self.port = free_port()
        self.bindir = postgres_bindir()
        self.data = self.base / "data"
        self.run_as: list[str] = []

    def _run(self, *argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run([*self.run_as, *argv], capture_output=True, text=True, check=False,
                              env={**os.environ, **(env or {})}, cwd=self.base)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        return proc

    def __enter__(self) -> PostgresServer:
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root: run it as the postgres user of the package.
            # /usr/sbin is not on every PATH (a minimal CI environment): look there too.
            runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
            if not runuser:
                raise RuntimeError("running as root and runuser is missing: cannot start PostgreSQL as 'postgres'")
            self.run_as = [runuser, "-u", "postgres", "--"]
            shutil.chown(self.base, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=scram-sha-256",
                  f"--pwfile={pwfile}", "--encoding=UTF8", "--no-instructions")
        pwfile.unlink()
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "server.log"), "-w",
                  "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.base}", "start")
        return self

    def create_database(self, name: str) -> None:
        self._run(str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name,
                  env={"PGPASSWORD": self.password})

    def __exit__(self, *exc) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run([*self.run_as, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                           capture_output=True, check=False)
        shutil.rmtree(self.base, ignore_errors=True)
