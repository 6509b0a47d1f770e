"""The in-process objects one worker shares between its agents: encoder, catalogue, model, metrics, live view."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property, partial
from pathlib import Path
from typing import Any, TypeVar

from rocksdict import Rdict

from encoders.backends import make_encoder
from encoders.cached_encoding import RecentQueries
from encoders.process_encoder import ProcessEncoder
from encoders.sentence_encoder import best_device
from encoders.text_encoder import TextEncoder
from encoders.vector_cache import VectorCache
from sinks.arm_statistics import ExperimentTotals, experiment_report
from sinks.catalogue import Catalogue
from sinks.online_model import OnlineModel
from sinks.shared_increments import SharedIncrement
from sinks.shared_snapshot import restore_shared, shared_snapshot
from streams.catalogue_data import upsert_items
from streams.events import Item, Limits
from streams.live_view import LiveView
from streams.metrics import WorkerMetrics
from streams.settings import Settings
from streams.shared_log import SharedLog
from streams.windowing import PendingWindows, WindowPolicy

T = TypeVar("T")
EXPERIMENT_HISTORY = 360
"""Points of the live page's experiment chart kept (one per 5 s: half an hour)."""


class WorkerRuntime:
    """Built lazily, so that importing the app (for tests, for the CLI) loads no model."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.limits = Limits(settings.max_payload_bytes, settings.max_text_chars, settings.max_future_ms,
                             settings.max_age_ms)
        self.window_policy = WindowPolicy(settings.window_max_events, settings.window_max_wait_ms)
        self.metrics = WorkerMetrics()
        self.live_view = LiveView()
        self.experiment_totals = ExperimentTotals()
        self.experiment_history: deque[tuple[int, list[dict[str, Any]]]] = deque(maxlen=EXPERIMENT_HISTORY)
        if settings.serving_experiment is not None and settings.role in ("all", "core"):
            experiment = settings.serving_experiment
            self.metrics.watch_experiment(lambda: (experiment.id, experiment_report(experiment,
                                                                                    self.experiment_totals)))
        self.pending_windows = PendingWindows()
        self.catalogue_caught_up = asyncio.Event()
        self.model_ready = asyncio.Event()
        """Set once the catalogue caught up and the shared signals were folded to the shared log's end."""
        self.shared_log = SharedLog()
        self.shared_offset = 0
        """The shared log's next offset the model folds (read and written in the model thread, so a snapshot holds
        the signals and their offset together)."""
        self.model_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self.recent_queries = RecentQueries(settings.query_cache_size)
        """Read and written in the model thread only."""

    def waiting_for(self) -> list[str]:
        """What the worker's agents still wait for before they run (nothing for an encoder-only worker, which holds
        no catalogue)."""
        if self.settings.role == "encoder":
            return []
        return [name for name, done in (("catalogue", self.catalogue_caught_up), ("shared signals", self.model_ready))
                if not done.is_set()]

    @cached_property
    def encoder(self) -> TextEncoder:
        s = self.settings
        build = partial(make_encoder, s.encoder_model, s.encoder_backend, s.encoder_device or None,
                        s.encoder_batch_size, Path(s.data_dir))
        return ProcessEncoder(build) if s.encoder_host == "process" else build()

    @cached_property
    def vector_cache(self) -> VectorCache:
        return VectorCache(Path(self.settings.data_dir) / "item-vectors", self.encoder.model_name)

    @cached_property
    def model(self) -> OnlineModel:
        return OnlineModel(Catalogue(self.encoder.dim, self.settings.encoder_device or best_device()),
                           self.settings.weighting, experiment=self.settings.serving_experiment)

    @cached_property
    def shared_store(self) -> Rdict:
        """The local RocksDB that keeps this worker's latest snapshot of the model's shared signals."""
        path = Path(self.settings.data_dir) / "shared-signals"
        path.mkdir(parents=True, exist_ok=True)
        return Rdict(str(path))

    @property
    def shared_snapshot_key(self) -> bytes:
        """One snapshot per app (consumer group), should two apps share a data directory."""
        return self.settings.faust_app_id.encode()

    def save_shared_signals(self) -> int:
        """Writes a snapshot of the shared signals (in the model thread, where they change); returns its size."""
        snapshot, events = shared_snapshot(self.model, self.shared_offset), self.model.fed.total
        self.shared_store[self.shared_snapshot_key] = snapshot
        self.metrics.shared_snapshot_events.set(events)
        return len(snapshot)

    def restore_shared_signals(self) -> tuple[int, int] | None:
        """Loads the last snapshot, if any, into the model before it learns anything; returns the co-visitation
        pairs restored and the shared log's offset folded to (None without a snapshot)."""
        snapshot = self.shared_store.get(self.shared_snapshot_key)
        if snapshot is None:
            return None
        try:
            pairs, offset = restore_shared(self.model, snapshot)
        except Exception:
            self.drop_shared_signals()  # a restore that failed part way must not be folded onto
            raise
        self.shared_offset = offset
        self.metrics.shared_events.set(self.model.fed.total)
        self.metrics.shared_snapshot_events.set(self.model.fed.total)
        return pairs, offset

    def drop_shared_signals(self) -> None:
        """A fresh model on the same catalogue: every shared signal empty, nothing folded."""
        self.__dict__["model"] = OnlineModel(self.model.catalogue, self.settings.weighting,
                                             experiment=self.settings.serving_experiment)
        self.shared_offset = 0
        self.metrics.shared_events.set(0)

    def fold_shared(self, increments: list[SharedIncrement], next_offset: int) -> None:
        """Folds increments of the shared log into the model; `next_offset`: where the log is read up to then."""
        self.model.fold(increments)
        self.shared_offset = next_offset
        self.metrics.shared_events.set(self.model.fed.total)

    def update_catalogue(self, items: list[Item], removed: list[str]) -> int:
        """Encodes (through the cache) and upserts items into the catalogue and removes the `removed` ids;
        returns how many texts were encoded."""
        started = time.perf_counter()
        catalogue = self.model.catalogue
        encoded = upsert_items(catalogue, items, self.encoder, self.vector_cache) if items else 0
        catalogue.remove(removed)
        self.metrics.encoded(encoded, time.perf_counter() - started)
        self.metrics.items_encoded.inc(encoded)
        self.metrics.catalogue_items.set(catalogue.listed())
        return encoded

    async def in_model_thread(self, function: Callable[..., T], *args: Any) -> T:
        """Runs blocking model work (learning, ranking, the calls to the encoder, the shared-signal snapshots) off
        the event loop, one call at a time, in the thread that alone reads and writes the model."""
        return await asyncio.get_running_loop().run_in_executor(self.model_pool, function, *args)
