"""A Faust worker with a RocksDB (rocksdict) table counts events per key on the real broker."""

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

pytestmark = pytest.mark.integration


def test_table_counts_match_what_was_produced(kafka_bootstrap, unique_name, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source, output = unique_name("count-in"), unique_name("count-out")
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(source, 4, 1), NewTopic(output, 4, 1)])
    admin.close()
    env = {**os.environ, "COUNT_APP_ID": unique_name("count-app"), "COUNT_BOOTSTRAP": kafka_bootstrap,
           "COUNT_DATADIR": str(tmp_path / "faust"), "COUNT_SOURCE": source, "COUNT_OUTPUT": output}
    worker = subprocess.Popen([sys.executable, "-m", "faust", "-A", "tests.integration.count_app", "worker",
                               "-l", "warn"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        expected = Counter()
        for i in range(600):
            key = f"k{(i * 7) % 23}"
            expected[key] += 1
            producer.send(source, key=key.encode(), value=b"x")
        producer.flush()
        consumer = KafkaConsumer(output, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
        latest: dict[str, int] = {}
        deadline = time.monotonic() + 90
        while latest != dict(expected) and time.monotonic() < deadline and worker.poll() is None:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    latest[record.key.decode()] = max(latest.get(record.key.decode(), 0), int(record.value))
        consumer.close()
        assert latest == dict(expected)
        assert list((tmp_path / "faust").rglob("*.sst")) or list((tmp_path / "faust").rglob("CURRENT"))
    finally:
        worker.terminate()
        worker.wait(30)
