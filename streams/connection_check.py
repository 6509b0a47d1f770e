"""A start-up probe that turns "cannot bootstrap" into one clear line (wrong password, broker down, TLS)."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError

from streams.kafka_clients import aiokafka_config
from streams.settings import Settings


class KafkaUnavailableError(RuntimeError):
    """The configured Kafka cannot be used; the message is one line for the user."""


class _LastError(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def _bootstrap(settings: Settings) -> None:
    client = AIOKafkaClient(**aiokafka_config(settings), request_timeout_ms=10_000)
    try:
        await client.bootstrap()
    finally:
        await client.close()


def check_connection(settings: Settings) -> None:
    """Connects once with the configured security settings; raises KafkaUnavailableError with the reason."""
    recorder = _LastError()
    logger = logging.getLogger("aiokafka")
    logger.addHandler(recorder)
    try:
        asyncio.run(_bootstrap(settings))
    except KafkaError as error:
        detail = " ".join(recorder.messages[-1:]) or str(error)
        if "SaslAuthenticationFailed" in detail or "Authentication failed" in detail:
            raise KafkaUnavailableError(
                f"Kafka at {settings.bootstrap} refused the credentials of user {settings.sasl_username!r} "
                f"({settings.sasl_mechanism}): check DRIFTREC_SASL_USERNAME and DRIFTREC_SASL_PASSWORD"
            ) from None
        raise KafkaUnavailableError(f"cannot reach Kafka at {settings.bootstrap}: {detail.splitlines()[0]}") from None
    finally:
        logger.removeHandler(recorder)
