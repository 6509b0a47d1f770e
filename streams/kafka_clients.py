"""kafka-python client configuration and the idempotent producer used by the CLI, demo and tools."""

from __future__ import annotations

import ssl
from typing import Any

from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import CredentialsT
from kafka import KafkaProducer

from streams.settings import Settings


def security_config(settings: Settings) -> dict[str, Any]:
    """The TLS/SASL options shared by kafka-python and aiokafka clients."""
    config: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.security_protocol.startswith("SASL"):
        config.update(sasl_mechanism=settings.sasl_mechanism, sasl_plain_username=settings.sasl_username,
                      sasl_plain_password=settings.sasl_password)
    return config


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.security_protocol.endswith("SSL"):
        return None
    return ssl.create_default_context(cafile=settings.ssl_cafile or None)


def client_config(settings: Settings) -> dict[str, Any]:
    """kafka-python options: bootstrap servers plus security."""
    config = {"bootstrap_servers": settings.bootstrap.split(","), **security_config(settings)}
    if settings.ssl_cafile:
        config["ssl_cafile"] = settings.ssl_cafile
    return config


def aiokafka_config(settings: Settings) -> dict[str, Any]:
    """aiokafka options: bootstrap servers plus security."""
    return {"bootstrap_servers": settings.bootstrap, **security_config(settings), "ssl_context": ssl_context(settings)}


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """Faust's `broker_credentials` for the configured security protocol (None for PLAINTEXT)."""
    context = ssl_context(settings)
    if settings.security_protocol.startswith("SASL"):
        return SASLCredentials(username=settings.sasl_username, password=settings.sasl_password,
                               mechanism=settings.sasl_mechanism, ssl_context=context)
    if context is not None:
        return SSLCredentials(context)
    return None


def idempotent_producer(settings: Settings) -> KafkaProducer:
    """acks=all, idempotent, batched: a retried send never duplicates a record."""
    return KafkaProducer(
        **client_config(settings),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        batch_size=256 * 1024,
        compression_type=None,
    )
