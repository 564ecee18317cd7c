"""Real servers for integration tests, started on loopback in a temporary directory.

- ``free_port()``: a free TCP port on 127.0.0.1.
- ``MotoServer``: ``moto_server`` from the test venv (a real S3/AWS API over HTTP).
- ``PostgresServer``: a throw-away cluster of Debian's PostgreSQL (initdb + pg_ctl), run as the
  ``postgres`` user when the tests run as root (PostgreSQL refuses root).
- ``wait_http(url)``: poll until a URL answers.
- ``stop(proc)``: terminate a process, kill it when it does not end in time.

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


def stop(proc: subprocess.Popen | None, timeout: float = 30) -> None:
    """Terminate ``proc`` and wait; kill it if it has not ended within ``timeout`` seconds (a slow
    shutdown on a loaded machine must not hide the test's own failure behind a TimeoutExpired)."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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


KAFKA_SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "roles" / "kafka" / "files" / "broker.sh"


class KafkaBroker:
    """A real Apache Kafka broker (KRaft, combined broker and controller) on 127.0.0.1:
    ``with KafkaBroker(admin_password) as kafka: kafka.bootstrap``.

    Its jars come from ``roles/kafka/files/broker.sh build`` (Maven, cached per version). The client
    listener speaks SASL_PLAINTEXT with SCRAM-SHA-512; the admin's SCRAM credential is written when the
    storage is formatted (``kafka-storage format --add-scram``), the controller listener uses SASL/PLAIN
    with the same admin. Authorization is Kafka's own ``StandardAuthorizer`` with ``User:admin`` as the
    only super user and no access without an ACL. ``start_seconds`` is the time from launch to a client's
    first answer.
    """

    ADMIN = "admin"

    def __init__(self, admin_password: str) -> None:
        self.base = pathlib.Path(tempfile.mkdtemp(prefix="mlops-kafka-"))
        self.password = admin_password
        self.port, self.controller_port = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.start_seconds = 0.0

    def _properties(self) -> str:
        jaas = {"plain": f'org.apache.kafka.common.security.plain.PlainLoginModule required username="{self.ADMIN}" '
                         f'password="{self.password}" user_{self.ADMIN}="{self.password}";',
                "scram": f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{self.ADMIN}" '
                         f'password="{self.password}";'}
        return "\n".join([
            "process.roles=broker,controller", "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"listeners=CLIENT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=CLIENT://127.0.0.1:{self.port}",
            "listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
            "inter.broker.listener.name=CLIENT", "controller.listener.names=CONTROLLER",
            "sasl.enabled.mechanisms=SCRAM-SHA-512", "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            "sasl.mechanism.controller.protocol=PLAIN", "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            f"listener.name.controller.plain.sasl.jaas.config={jaas['plain']}",
            f"listener.name.client.scram-sha-512.sasl.jaas.config={jaas['scram']}",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users=User:{self.ADMIN}", "allow.everyone.if.no.acl.found=false",
            f"log.dirs={self.base / 'data'}", "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1", "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1", "group.initial.rebalance.delay.ms=0", ""])

    def __enter__(self) -> KafkaBroker:
        java = shutil.which("java")
        if not java:
            raise RuntimeError("java is not on PATH: Kafka 4's broker needs Java 17 or newer (apt-get install openjdk-17-jre-headless)")
        build = subprocess.run([str(KAFKA_SCRIPT), "build"], capture_output=True, text=True, check=False)
        if build.returncode != 0:
            raise RuntimeError(f"broker.sh build failed: {build.stderr[-2000:]}")
        classpath = pathlib.Path(subprocess.run([str(KAFKA_SCRIPT), "path", "classpath"], capture_output=True, text=True,
                                                check=True).stdout.strip()).read_text().strip()
        config = self.base / "server.properties"
        config.write_text(self._properties())
        config.chmod(0o600)
        log4j = self.base / "log4j2.properties"
        log4j.write_text("appender.file.type=File\nappender.file.name=file\nappender.file.fileName="
                         f"{self.base / 'server.log'}\nappender.file.layout.type=PatternLayout\n"
                         "appender.file.layout.pattern=[%d] %p %m (%c)%n\nrootLogger.level=INFO\n"
                         "rootLogger.appenderRef.file.ref=file\n")
        java_cmd = [java, "-Xmx512m", "-XX:+UseSerialGC", f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath]
        cluster_id = subprocess.run([*java_cmd, "kafka.tools.StorageTool", "random-uuid"], capture_output=True, text=True,
                                    check=True).stdout.strip().splitlines()[-1]
        fmt = subprocess.run([*java_cmd, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config),
                              "--add-scram", f"SCRAM-SHA-512=[name={self.ADMIN},password={self.password}]"],
                             capture_output=True, text=True, check=False)
        if fmt.returncode != 0:
            raise RuntimeError(f"kafka-storage format failed: {fmt.stdout[-1000:]} {fmt.stderr[-2000:]}")
        start = time.monotonic()
        self.proc = subprocess.Popen([*java_cmd, "kafka.Kafka", str(config)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.base / "stderr.log", "wb"), cwd=self.base)
        try:
            self._wait_ready(timeout=90)
        except RuntimeError:
            self.__exit__()
            raise
        self.start_seconds = time.monotonic() - start
        return self

    def client(self, user: str, password: str) -> dict:
        return {"bootstrap.servers": self.bootstrap, "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user, "sasl.password": password}

    def _wait_ready(self, timeout: float) -> None:
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout
        admin = AdminClient({**self.client(self.ADMIN, self.password), "log_level": 0})  # quiet while it starts
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the Kafka broker exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                if admin.list_topics(timeout=2).brokers:
                    return
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Kafka broker did not answer within {timeout} s: {self.log_tail()}")
            time.sleep(0.3)

    def log_tail(self) -> str:
        parts = [(self.base / name).read_text(errors="replace")[-3000:] for name in ("server.log", "stderr.log")
                 if (self.base / name).exists()]
        return "\n".join(parts)

    def __exit__(self, *exc) -> None:
        stop(self.proc)
        shutil.rmtree(self.base, ignore_errors=True)
