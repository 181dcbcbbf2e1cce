"""Throwaway servers of our own for fault injection: PostgreSQL, Redis and a RabbitMQ node, each on its
own port with its own data directory, restartable at will. The machine's own services are never touched.

    with throwaway("postgresql", tmp) as pg:   # pg.url, pg.restart()
        ...
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, *, timeout_s: float = 60, up: bool = True) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                is_up = True
        except OSError:
            is_up = False
        if is_up == up:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"port {port} did not come {'up' if up else 'down'} within {timeout_s}s")
        time.sleep(0.1)


class Server:
    """One server process (in its own process group) that can be restarted."""

    name = "server"
    stop_signal = signal.SIGTERM

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        raise NotImplementedError

    def command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def start(self) -> None:
        args, env = self.command()
        log = open(self.home / f"{self.name}.log", "ab")  # noqa: SIM115 - kept open by the server process
        self.proc = subprocess.Popen(args, env={**os.environ, **env}, stdout=log, stderr=log, start_new_session=True)
        log.close()
        wait_port(self.port, timeout_s=90)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, self.stop_signal)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        wait_port(self.port, up=False, timeout_s=30)

    def restart(self) -> None:
        self.stop()
        self.start()
        self.restarts += 1


class Redis(Server):
    name = "redis"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> tuple[list[str], dict[str, str]]:
        args = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.home)]
        return [*args, "--appendonly", "yes", "--appendfsync", "always", "--save", ""], {}


class RabbitMQ(Server):
    name = "rabbitmq"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def command(self) -> tuple[list[str], dict[str, str]]:
        (self.home / "enabled_plugins").write_text("[].\n")
        node = f"lwchaos{self.port}@localhost"
        env = {
            "HOME": str(self.home),  # its own Erlang cookie
            "RABBITMQ_NODENAME": node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(self.home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.home / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.home / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.home / "none"),
        }
        return ["/usr/lib/rabbitmq/bin/rabbitmq-server"], env


class PostgreSQL(Server):
    name = "postgresql"
    stop_signal = signal.SIGINT  # fast shutdown: clients are disconnected (SIGTERM waits for them to leave)

    def __init__(self, home: Path) -> None:
        super().__init__(home)
        self.data = home / "pgdata"
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        self.bin = Path(bins[-1]) if bins else Path(os.path.dirname(shutil.which("initdb") or "initdb"))
        self._as_postgres = os.geteuid() == 0  # PostgreSQL refuses to run as root

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if self._as_postgres else list(args)

    def command(self) -> tuple[list[str], dict[str, str]]:
        if not self.data.exists():
            self.data.mkdir(parents=True)
            if self._as_postgres:  # the postgres user must reach its directory
                for parent in [self.home, *self.home.parents]:
                    if parent.stat().st_uid == 0 and not parent.stat().st_mode & 0o001:
                        parent.chmod(parent.stat().st_mode | 0o711)
                shutil.chown(self.home, "postgres")
                shutil.chown(self.data, "postgres")
            init = self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
            subprocess.run(init, check=True, capture_output=True)
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=on"
        return self._run(str(self.bin / "postgres"), "-D", str(self.data), *options.split()), {}

    def start(self) -> None:
        args, env = self.command()
        self.proc = subprocess.Popen(
            args,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_port(self.port, timeout_s=90)
        time.sleep(0.5)  # accepting connections a moment after the port opens


@contextlib.contextmanager
def throwaway(kind: str, home: Path) -> Iterator[Server]:
    """A started server of ``kind`` (postgresql, redis, rabbitmq) under ``home``; stopped afterwards."""
    home.mkdir(parents=True, exist_ok=True)
    server: Server = {"postgresql": PostgreSQL, "redis": Redis, "rabbitmq": RabbitMQ}[kind](home)
    server.start()
    try:
        yield server
    finally:
        server.stop()
