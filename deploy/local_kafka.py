"""A local single-node Apache Kafka broker (KRaft, combined broker + controller) for development.

The broker jars are resolved once from Maven Central with Maven into a cache directory outside the
repository; the broker then runs from them on 127.0.0.1. When ``KAFKA_BOOTSTRAP`` is set, nothing is
started and that broker is used instead.

Usage: ``python -m deploy.local_kafka up|down|reset|status`` (the Makefile and the ``driftrec`` CLI call it);
``reset`` stops the broker and deletes its storage, every topic with it.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

KAFKA_VERSION = "4.3.1"
DEPLOY_DIR = Path(__file__).resolve().parent


class BrokerError(RuntimeError):
    """The local broker could not be provided; the message is one line for the user."""


@dataclass(frozen=True)
class LocalBroker:
    """Where the local broker lives and how it listens."""

    port: int = 9092
    controller_port: int = 9093
    kafka_version: str = KAFKA_VERSION
    home: Path = Path(os.environ.get("DRIFTREC_KAFKA_HOME", Path.home() / ".cache" / "driftrec" / "kafka"))

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def scram_port(self) -> int:
        """A SASL_PLAINTEXT listener with SCRAM-SHA-256 beside the plaintext one."""
        return self.port + 2

    @property
    def scram_file(self) -> Path:
        return self.run_dir / "scram-credentials.json"

    def scram_credentials(self) -> tuple[str, str]:
        """The development user and password of the SCRAM listener (made when storage is formatted)."""
        data = json.loads(self.scram_file.read_text())
        return data["username"], data["password"]

    @property
    def libs(self) -> Path:
        return self.home / f"libs-{self.kafka_version}"

    @property
    def run_dir(self) -> Path:
        return self.home / f"run-{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "broker.log"


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise BrokerError(f"'{tool}' was not found on PATH: install it, or point KAFKA_BOOTSTRAP at a running Kafka")
    return path


def resolve_jars(broker: LocalBroker) -> Path:
    """Fetches the broker's jars with Maven into the cache once; returns the directory."""
    done_marker = broker.libs / ".complete"
    if done_marker.exists():
        return broker.libs
    _require("java")
    mvn = _require("mvn")
    broker.libs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    result = subprocess.run(
        [
            mvn, "-q", "-B", "-f", str(DEPLOY_DIR / "kafka-pom.xml"),
            "dependency:copy-dependencies", "-DincludeScope=runtime",
            f"-Dkafka.version={broker.kafka_version}", f"-DoutputDirectory={broker.libs}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        last = (result.stdout + result.stderr).strip().splitlines()[-1:] or ["no output"]
        raise BrokerError(f"Maven could not resolve kafka_2.13:{broker.kafka_version}: {last[0]}")
    done_marker.touch()
    print(f"resolved Kafka {broker.kafka_version} jars in {time.monotonic() - started:.1f}s", flush=True)
    return broker.libs


def _server_properties(broker: LocalBroker) -> str:
    data = broker.run_dir / "data"
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{broker.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{broker.port},SASL_PLAINTEXT://127.0.0.1:{broker.scram_port},"
            f"CONTROLLER://127.0.0.1:{broker.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{broker.port},SASL_PLAINTEXT://127.0.0.1:{broker.scram_port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
            "sasl.enabled.mechanisms=SCRAM-SHA-256",
            "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            f"log.dirs={data}",
            "num.partitions=4",
            "auto.create.topics.enable=true",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=8",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.segment.bytes=67108864",
            "",
        ]
    )


def _java_command(broker: LocalBroker, main_class: str, *args: str) -> list[str]:
    return [
        _require("java"),
        "-Xms256m", "-Xmx1g",
        f"-Dlog4j2.configurationFile={DEPLOY_DIR / 'log4j2.properties'}",
        "-cp", f"{broker.libs}/*",
        main_class, *args,
    ]


def new_cluster_id() -> str:
    """A random cluster id as Kafka writes them (16 bytes, base64url, unpadded) that does not start with "-": the
    storage tool's argument parser would read such an id as an option (Kafka's own ids skip them too)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _format_storage(broker: LocalBroker, config: Path) -> None:
    """Formats KRaft storage once, with a SCRAM-SHA-256 development user (a storage without one is re-made)."""
    data = broker.run_dir / "data"
    if (data / "meta.properties").exists() and broker.scram_file.exists():
        return
    shutil.rmtree(data, ignore_errors=True)
    username = "driftrec"
    password = os.environ.get("DRIFTREC_KAFKA_SCRAM_PASSWORD") or secrets.token_urlsafe(18)
    cluster_id = new_cluster_id()
    result = subprocess.run(
        _java_command(broker, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config),
                      "--add-scram", f"SCRAM-SHA-256=[name={username},password={password}]"),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BrokerError(f"formatting KRaft storage failed: {(result.stdout + result.stderr).strip()[-300:]}")
    broker.scram_file.write_text(json.dumps({"username": username, "password": password}))
    broker.scram_file.chmod(0o600)


def _running_pid(broker: LocalBroker) -> int | None:
    try:
        pid = int(broker.pid_file.read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return pid


def accepts_metadata(bootstrap: str, timeout_s: float = 2.0) -> bool:
    """True when the broker answers a metadata request (not merely an open port)."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    host, _, port = bootstrap.partition(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError:
        return False
    try:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, bootstrap_timeout_ms=int(timeout_s * 1000))
    except (KafkaError, OSError, ValueError):
        return False
    try:
        consumer.topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        consumer.close()


def _log_tail(broker: LocalBroker, lines: int = 15) -> str:
    """The broker log's last lines, for an error message (the log is in the run directory, not in CI's output)."""
    if not broker.log_file.exists():
        return "(no broker log)"
    with broker.log_file.open("rb") as log:
        log.seek(max(0, broker.log_file.stat().st_size - 16_384))
        return "\n".join(log.read().decode(errors="replace").splitlines()[-lines:])


def start(broker: LocalBroker, timeout_s: float = 180.0) -> str:
    """Starts the broker unless one already runs; returns the bootstrap address."""
    external = os.environ.get("KAFKA_BOOTSTRAP")
    if external:
        return external
    if _running_pid(broker) is not None and accepts_metadata(broker.bootstrap):
        print(f"Kafka already running on {broker.bootstrap}", flush=True)
        return broker.bootstrap
    resolve_jars(broker)
    broker.run_dir.mkdir(parents=True, exist_ok=True)
    config = broker.run_dir / "server.properties"
    config.write_text(_server_properties(broker))
    _format_storage(broker, config)
    started = time.monotonic()
    with broker.log_file.open("ab") as log:
        process = subprocess.Popen(
            _java_command(broker, "kafka.Kafka", str(config)),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    broker.pid_file.write_text(str(process.pid))
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BrokerError(f"Kafka exited with code {process.returncode} during start-up; the end of "
                              f"{broker.log_file}:\n{_log_tail(broker)}")
        if accepts_metadata(broker.bootstrap):
            print(f"Kafka {broker.kafka_version} ready on {broker.bootstrap} in {time.monotonic() - started:.1f}s",
                  flush=True)
            return broker.bootstrap
        time.sleep(0.5)
    stop(broker)
    raise BrokerError(f"Kafka did not answer a metadata request within {timeout_s:.0f}s; the end of "
                      f"{broker.log_file}:\n{_log_tail(broker)}")


def stop(broker: LocalBroker, timeout_s: float = 30.0) -> bool:
    """Stops the broker this script started; returns whether one was running."""
    pid = _running_pid(broker)
    if pid is None:
        return False
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _running_pid(broker) is not None:
        time.sleep(0.2)
        _reap(pid)
    if _running_pid(broker) is not None:
        os.killpg(pid, signal.SIGKILL)
        _reap(pid)
    broker.pid_file.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="local_kafka", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "reset", "status", "resolve"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("DRIFTREC_KAFKA_PORT", "9092")))
    args = parser.parse_args(argv)
    broker = LocalBroker(port=args.port, controller_port=args.port + 1)
    try:
        if args.action == "up":
            print(start(broker), flush=True)
        elif args.action == "down":
            print("stopped" if stop(broker) else "no local broker was running")
        elif args.action == "reset":
            stop(broker)
            shutil.rmtree(broker.run_dir / "data", ignore_errors=True)
            print(f"stopped; storage of {broker.bootstrap} deleted (every topic; formatted afresh at the next up)")
        elif args.action == "resolve":
            print(resolve_jars(broker))
        else:
            bootstrap = os.environ.get("KAFKA_BOOTSTRAP", broker.bootstrap)
            up = accepts_metadata(bootstrap)
            print(f"{bootstrap}: {'up' if up else 'down'}")
            return 0 if up else 1
    except BrokerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
