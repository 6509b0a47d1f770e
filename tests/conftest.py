"""Shared fixtures: the real broker (one per session), unique topic names, the real encoder (loaded once)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

REQUIRE_BROKER = os.environ.get("DRIFTREC_REQUIRE_BROKER") == "1"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """The broker the integration tests use: KAFKA_BOOTSTRAP, or the local one from deploy/ (started if needed).

    Locally a broker that cannot be started skips the test; with DRIFTREC_REQUIRE_BROKER=1 (CI) it fails.
    """
    from deploy.local_kafka import BrokerError, LocalBroker, start

    try:
        yield start(LocalBroker())
    except BrokerError as error:
        if REQUIRE_BROKER:
            pytest.fail(f"no Kafka broker: {error}")
        pytest.skip(f"no Kafka broker: {error}")


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Iterator[Callable[[str], str]]:
    """A factory of topic/group names unique to this test; with a broker, the test's topics are deleted after it."""
    run = uuid.uuid4().hex[:8]
    yield lambda base: f"test-{base}-{run}"
    if "kafka_bootstrap" in request.fixturenames:
        from streams.settings import Settings
        from streams.topics_admin import delete_topics_containing

        delete_topics_containing(Settings(bootstrap=request.getfixturevalue("kafka_bootstrap")), run)


@pytest.fixture(scope="session")
def encoder():  # type: ignore[no-untyped-def]
    """The real default sentence-transformers encoder, loaded once per session."""
    from encoders.sentence_encoder import SentenceTransformerEncoder

    return SentenceTransformerEncoder()


collect_ignore = ["integration/count_app.py"]
