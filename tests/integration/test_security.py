"""The local broker's SASL_PLAINTEXT SCRAM-SHA-256 listener: right credentials work, a wrong password fails
with one clear line."""

import os
import subprocess
import sys
from dataclasses import replace

import orjson
import pytest
from kafka import KafkaConsumer

from streams.kafka_clients import client_config
from streams.settings import Settings, settings_env

pytestmark = pytest.mark.integration


@pytest.fixture
def scram_settings(kafka_bootstrap, unique_name) -> Settings:  # type: ignore[no-untyped-def]
    from deploy.local_kafka import LocalBroker

    if "KAFKA_BOOTSTRAP" in os.environ:
        pytest.skip("the SCRAM listener belongs to the local broker from deploy/")
    broker = LocalBroker()
    username, password = broker.scram_credentials()
    return Settings(bootstrap=f"127.0.0.1:{broker.scram_port}", security_protocol="SASL_PLAINTEXT",
                    sasl_username=username, sasl_password=password, behaviour_topics=(unique_name("secure"),),
                    app_id=unique_name("secure-app"))


def driftrec(settings: Settings, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, **settings_env(settings)}
    env.pop("KAFKA_BOOTSTRAP", None)
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], env=env, input=stdin,
                          capture_output=True, timeout=120, check=False)


def test_right_credentials_produce_and_consume(scram_settings: Settings) -> None:
    events = b"\n".join(
        orjson.dumps({"event_id": f"e{i}", "user_id": f"u{i % 3}", "kind": "view", "item_id": "i1",
                      "ts": 1_700_000_000_000 + i})
        for i in range(25)
    )
    result = driftrec(scram_settings, "produce", "-", stdin=events)
    assert result.returncode == 0, result.stderr.decode()
    assert f"sent 25 events to {scram_settings.behaviour_topics[0]}" in result.stdout.decode()
    consumer = KafkaConsumer(scram_settings.behaviour_topics[0], **client_config(scram_settings),
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    received = [orjson.loads(message.value)["event_id"] for message in consumer]
    consumer.close()
    assert sorted(received) == sorted(f"e{i}" for i in range(25))


def test_wrong_password_fails_with_one_clear_line(scram_settings: Settings) -> None:
    result = driftrec(replace(scram_settings, sasl_password="not-the-password"), "topics")
    assert result.returncode == 1
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: Kafka at 127.0.0.1:")
    assert "refused the credentials of user 'driftrec'" in lines[0]
    assert "not-the-password" not in lines[0]
