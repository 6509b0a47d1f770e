"""Agent tests with Faust's test_context: each agent fed directly, its outgoing topics replaced by fakes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from unittest.mock import AsyncMock

import numpy as np
import orjson
import pytest
from aiokafka.structs import RecordMetadata

from encoders.cached_encoding import RecentQueries
from sinks.catalogue import CatalogueItem
from sinks.shared_increments import SharedIncrement

pytest.importorskip("faust")

from streams import agent_support, agents, encode_agent, weigh_agent
from streams.app import app, runtime
from streams.metrics import WorkerMetrics
from streams.shared_log import SharedLog
from streams.windowing import EncodedWindow, PendingWindows, decode_window
from weighting.user_state import UserState
from weighting.weight_update import WeightUpdate


class TopicEncoder:
    """A deterministic stand-in for the sentence-transformers model: one axis per topic word."""

    model_name = "topic-axes"
    dim = 4
    device = "cpu"
    words = ("space", "cooking", "jazz", "hiking")

    def encode(self, texts):  # type: ignore[no-untyped-def]
        rows = [[float(w in t.lower()) + 0.01 for w in self.words] for t in texts]
        vectors = np.asarray(rows, dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


async def settled(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    """Waits until `condition` holds (the agent under test has done its work) or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


@pytest.fixture
def worker_runtime(monkeypatch):  # type: ignore[no-untyped-def]
    """The app finalised on a memory store, flow control resumed, and a small catalogue loaded."""
    app.finalize()
    app.conf.store = "memory://"
    app.flow_control.resume()
    encoder = TopicEncoder()
    monkeypatch.setitem(runtime.__dict__, "encoder", encoder)
    from sinks.catalogue import Catalogue
    from sinks.online_model import OnlineModel

    model = OnlineModel(Catalogue(encoder.dim))
    items = [CatalogueItem(f"{w}-{i}", f"{w} story {i}", (w,), 0) for w in encoder.words for i in range(3)]
    model.catalogue.upsert(items, dict(zip([i.item_id for i in items], encoder.encode([i.title for i in items]),
                                           strict=True)))
    monkeypatch.setitem(runtime.__dict__, "model", model)
    monkeypatch.setattr(runtime, "pending_windows", PendingWindows())
    monkeypatch.setattr(agents, "CHAINS_STAGES", False)  # ingest writes windows for the encoder pool
    monkeypatch.setattr(runtime, "shared_log", SharedLog())
    for table in (agents.open_windows, agents.user_states):  # the test context's producer sends nothing: no acks
        monkeypatch.setattr(table, "changelog_acked", AsyncMock())
    monkeypatch.setattr(agents.shared_topic, "send", AsyncMock(side_effect=shared_log_loopback(model)))
    runtime.model_ready.set()
    yield runtime
    runtime.model_ready.clear()


def shared_log_loopback(model):  # type: ignore[no-untyped-def]
    """The shared log of one worker without a broker: each increment sent is acked and folded into `model` at once,
    as the worker's follower would fold it."""
    log: list[bytes] = []

    async def send(*, key: bytes, value: bytes) -> asyncio.Future[RecordMetadata]:
        log.append(value)
        model.fold([SharedIncrement.from_json(value)])
        await runtime.shared_log.advanced_to(len(log))
        delivery: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        delivery.set_result(RecordMetadata("shared", 0, None, len(log) - 1, -1, 0, 0))  # type: ignore[arg-type]
        return delivery

    return send


def event(user: str, n: int, kind: str = "view", item: str | None = "space-0", query: str | None = None) -> bytes:
    data = {"event_id": f"{user}-{n}", "user_id": user, "kind": kind, "ts": int(time.time() * 1000)}
    if item:
        data["item_id"] = item
    if query:
        data["query"] = query
    return orjson.dumps(data)


def acked() -> asyncio.Future[None]:
    """What a topic send returns: the broker's ack, here already received."""
    delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    delivery.set_result(None)
    return delivery


def stopped_clock(monkeypatch) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The agents' clock, stopped at the current time; a test moves it by setting `now`."""
    clock = {"now": time.time() * 1000.0}
    monkeypatch.setattr(agents, "now_ms", lambda: clock["now"])
    return clock


async def handled(agent, *messages: tuple[bytes, bytes]) -> None:  # type: ignore[no-untyped-def]
    """Puts messages (value, key) into an agent's test context as one batch and waits until it was handled."""
    for value, key in messages:
        await agent.put(value, key=key)
    await asyncio.sleep(max(agents.settings.batch_within_s * 4, 0.2))


def ticks_for_empty_values(agent, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Messages put with an empty value arrive on the ticks topic."""
    to_message = agent.to_message

    def to_tick_or_event(key, value, **kwargs):  # type: ignore[no-untyped-def]
        message = to_message(key, value, **kwargs)
        if value == b"":
            message.topic = agents.settings.ticks_topic
        return message

    monkeypatch.setattr(agent, "to_message", to_tick_or_event)


@pytest.mark.asyncio
async def test_ingest_windows_valid_events_and_dead_letters_bad_ones(worker_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    windows, dead = AsyncMock(side_effect=lambda **_: acked()), AsyncMock(side_effect=lambda **_: acked())
    monkeypatch.setattr(agents.windows_topic, "send", windows)
    monkeypatch.setattr(agent_support.dead_letter_topic, "send", dead)
    async with agents.ingest.test_context() as agent:
        await handled(agent, (event("u1", 0), b"u1"), (b"{broken", b"u1"),
                      (event("u1", 1, kind="purchase", item="jazz-1"), b"u1"), (event("u2", 0), b"u2"))
        assert "u1" not in agents.open_windows
        assert [e.event.event_id for e in decode_window(agents.open_windows["u2"])] == ["u2-0"]
    assert dead.await_count == 1
    assert orjson.loads(dead.await_args.kwargs["value"])["reason"].startswith("malformed JSON")
    assert windows.await_count == 1
    flushed = orjson.loads(windows.await_args.kwargs["value"])
    assert [e["event_id"] for e in flushed] == ["u1-0", "u1-1"]


class Stopped(BaseException):
    """Where the worker would have ended (`agent_support.exit_now`)."""


@pytest.mark.asyncio
async def test_a_batch_that_cannot_be_dead_lettered_stops_the_worker_unacked(worker_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The dead-letter send fails (an outage, a record too large): the worker must end before Faust's take_events
    acks the batch in its `finally`, so that its messages are fetched again after the restart."""
    monkeypatch.setattr(agent_support.dead_letter_topic, "send", AsyncMock(side_effect=RuntimeError("no leader")))
    monkeypatch.setattr(agents.windows_topic, "send", AsyncMock(side_effect=lambda **_: acked()))
    acked_at_stop: list[list[bool]] = []

    def exit_now(code: int) -> None:
        acked_at_stop.append([message.acked for message in messages])
        raise Stopped(code)

    monkeypatch.setattr(agent_support, "exit_now", exit_now)
    messages = []
    with pytest.raises(Stopped):  # the agent crashed with it, and its test context says so as it closes
        async with agents.ingest.test_context() as agent:
            to_message = agent.to_message

            def kept(key, value, **kwargs):  # type: ignore[no-untyped-def]
                messages.append(to_message(key, value, **kwargs))
                return messages[-1]

            monkeypatch.setattr(agent, "to_message", kept)
            await handled(agent, (event("u31", 0), b"u31"), (b"{broken", b"u31"))
    assert acked_at_stop == [[False, False]]


@pytest.mark.asyncio
async def test_ingest_stamps_an_event_from_the_future_with_its_arrival(worker_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    clock = stopped_clock(monkeypatch)
    ahead = orjson.loads(event("u30", 0)) | {"ts": int(clock["now"]) + 3 * 3_600_000}
    past = orjson.loads(event("u30", 1)) | {"ts": int(clock["now"]) - 1000}
    async with agents.ingest.test_context() as agent:
        await handled(agent, (orjson.dumps(ahead), b"u30"), (orjson.dumps(past), b"u30"))
        window = decode_window(agents.open_windows["u30"])
    assert [e.event.ts for e in window] == [int(clock["now"]), int(clock["now"]) - 1000]
    assert window[0].arrived_ms == clock["now"]


@pytest.mark.asyncio
async def test_ingest_flushes_each_due_window_of_a_user_in_order_within_a_batch(worker_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    windows = AsyncMock(side_effect=lambda **_: acked())
    monkeypatch.setattr(agents.windows_topic, "send", windows)
    kinds = ["view", "purchase", "view", "purchase", "view"]
    async with agents.ingest.test_context() as agent:
        await handled(agent, *[(event("u3", n, kind, f"jazz-{n % 3}"), b"u3") for n, kind in enumerate(kinds)])
        assert [e.event.event_id for e in decode_window(agents.open_windows["u3"])] == ["u3-4"]
    sent = [[e["event_id"] for e in orjson.loads(call.kwargs["value"])] for call in windows.await_args_list]
    assert sent == [["u3-0", "u3-1"], ["u3-2", "u3-3"]]


@pytest.mark.asyncio
async def test_ingest_dead_letters_an_event_it_fails_on_and_goes_on(worker_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    windows, dead = AsyncMock(side_effect=lambda **_: acked()), AsyncMock(side_effect=lambda **_: acked())
    monkeypatch.setattr(agents.windows_topic, "send", windows)
    monkeypatch.setattr(agent_support.dead_letter_topic, "send", dead)
    real_route = agents.route_event

    def route_failing_on_u6(value: bytes, *args, **kwargs):  # type: ignore[no-untyped-def]
        if b'"u6-0"' in value:
            raise RuntimeError("a bug in routing")
        return real_route(value, *args, **kwargs)

    monkeypatch.setattr(agents, "route_event", route_failing_on_u6)
    async with agents.ingest.test_context() as agent:
        await handled(agent, (event("u6", 0), b"u6"), (event("u7", 0, kind="purchase", item="jazz-1"), b"u7"))
    [failed] = dead.await_args_list
    record = orjson.loads(failed.kwargs["value"])
    assert record["reason"] == "internal error: RuntimeError: a bug in routing"
    assert orjson.loads(record["value"])["event_id"] == "u6-0"
    assert [e["event_id"] for e in orjson.loads(windows.await_args.kwargs["value"])] == ["u7-0"]


@pytest.mark.asyncio
async def test_a_tick_for_an_earlier_window_rearms_the_open_one(worker_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The timer takes a due user, and before its tick arrives that window is flushed and a new one opened: the
    tick finds a window that is not due yet. Before, nothing asked for that window's flush again (a CI loss)."""
    windows = AsyncMock(side_effect=lambda **_: acked())
    monkeypatch.setattr(agents.windows_topic, "send", windows)
    async with agents.ingest.test_context() as agent:
        ticks_for_empty_values(agent, monkeypatch)
        await handled(agent, (event("u9", 0), b"u9"))
        first = runtime.pending_windows.first_arrived(0, "u9")
        runtime.pending_windows.closed(0, "u9")  # as the timer does when it sends a tick
        await handled(agent, (b"", b"u9"))  # that tick, meant for an earlier window, arrives early
        assert runtime.pending_windows.first_arrived(0, "u9") == first and "u9" in agents.open_windows
    assert windows.await_count == 0


@pytest.mark.asyncio
async def test_a_tick_that_is_not_delivered_leaves_its_window_armed(worker_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    clock = stopped_clock(monkeypatch)
    failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    failed.set_exception(RuntimeError("request timed out"))
    ticks = AsyncMock(side_effect=[RuntimeError("broker unreachable"), failed, acked()])
    monkeypatch.setattr(agents.ticks_topic, "send", ticks)
    pending = runtime.pending_windows
    first = clock["now"] - 10 * agents.settings.window_max_wait_ms
    pending.opened(0, "u12", first)
    pending.opened(1, "u13", first + 1)
    await agents.tick_quiet_windows()  # neither tick is delivered: both windows stay armed, with their age
    assert (pending.first_arrived(0, "u12"), pending.first_arrived(1, "u13")) == (first, first + 1)
    await agents.tick_quiet_windows()  # the next timer sends both again; the first one gets through
    assert ticks.await_count == 4 and [c.kwargs["key"] for c in ticks.await_args_list] == [b"u12", b"u13"] * 2
    assert pending.first_arrived(0, "u12") is None and pending.first_arrived(1, "u13") == first + 1


@pytest.mark.asyncio
async def test_a_window_whose_flush_failed_keeps_its_events_armed_for_another(worker_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The event that made the window due is kept in it, not dead-lettered: the broker is to blame, not the event."""
    sends = AsyncMock(side_effect=[RuntimeError("broker unreachable"), acked()])
    dead = AsyncMock(side_effect=lambda **_: acked())
    monkeypatch.setattr(agents.windows_topic, "send", sends)
    monkeypatch.setattr(agent_support.dead_letter_topic, "send", dead)
    async with agents.ingest.test_context() as agent:
        await handled(agent, (event("u10", 0), b"u10"))
        first = runtime.pending_windows.first_arrived(0, "u10")
        runtime.pending_windows.closed(0, "u10")  # the timer took it to send its tick
        await handled(agent, (event("u10", 1, kind="purchase", item="jazz-1"), b"u10"))  # due at once; send fails
        assert runtime.pending_windows.first_arrived(0, "u10") == first
        assert [e.event.event_id for e in decode_window(agents.open_windows["u10"])] == ["u10-0", "u10-1"]
        await handled(agent, (event("u11", 0), b"u11"))  # the next message of the partition flushes it
    assert dead.await_count == 0
    assert [e["event_id"] for e in orjson.loads(sends.await_args.kwargs["value"])] == ["u10-0", "u10-1"]
    assert "u10" not in agents.open_windows


@pytest.mark.asyncio
async def test_the_next_message_of_a_partition_flushes_its_windows_due_by_age(worker_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """No tick needed while the partition has messages: the flush runs in that partition's context, in order."""
    windows = AsyncMock(side_effect=lambda **_: acked())
    monkeypatch.setattr(agents.windows_topic, "send", windows)
    clock = stopped_clock(monkeypatch)
    start = clock["now"]
    async with agents.ingest.test_context() as agent:
        await handled(agent, (event("u12", 0), b"u12"))
        clock["now"] = start + 200.0
        await handled(agent, (event("u13", 0), b"u13"))
        assert windows.await_count == 0
        clock["now"] = start + agents.settings.window_max_wait_ms
        await handled(agent, (event("u13", 1), b"u13"))  # u12's window is due now; u13's is not
        [flushed] = windows.await_args_list
        assert [e["event_id"] for e in orjson.loads(flushed.kwargs["value"])] == ["u12-0"]
        assert "u12" not in agents.open_windows and len(decode_window(agents.open_windows["u13"])) == 2
        assert runtime.pending_windows.first_arrived(0, "u12") is None
        assert runtime.pending_windows.first_arrived(0, "u13") == start + 200.0


@pytest.mark.asyncio
async def test_a_batch_that_fails_leaves_the_windows_it_took_due(worker_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The batch is tried again one message at a time; the due window it had taken off is flushed then."""
    windows = AsyncMock(side_effect=lambda **_: acked())
    monkeypatch.setattr(agents.windows_topic, "send", windows)
    real_send_windows, failed = agents.send_windows, []

    async def failing_once(flushes, fence):  # type: ignore[no-untyped-def]
        if flushes and not failed:
            failed.append(flushes)
            raise RuntimeError("a bug after the due windows were taken")
        return await real_send_windows(flushes, fence)

    monkeypatch.setattr(agents, "send_windows", failing_once)
    clock = stopped_clock(monkeypatch)
    async with agents.ingest.test_context() as agent:
        await handled(agent, (event("u15", 0), b"u15"))
        clock["now"] += agents.settings.window_max_wait_ms
        await handled(agent, (event("u16", 0), b"u16"))  # u15 is due: its batch fails once
    assert [user for user, _ in failed[0]] == ["u15"]
    assert [e["event_id"] for e in orjson.loads(windows.await_args.kwargs["value"])] == ["u15-0"]
    assert "u15" not in agents.open_windows


@pytest.mark.asyncio
async def test_a_window_opened_after_a_flush_is_armed_with_its_own_age(worker_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(agents.windows_topic, "send", AsyncMock(side_effect=lambda **_: acked()))
    clock = stopped_clock(monkeypatch)
    start = clock["now"]
    async with agents.ingest.test_context() as agent:
        await handled(agent, (event("u17", 0), b"u17"))
        clock["now"] = start + 100.0
        await handled(agent, (event("u17", 1, kind="purchase", item="jazz-1"), b"u17"), (event("u17", 2), b"u17"))
        assert [e.event.event_id for e in decode_window(agents.open_windows["u17"])] == ["u17-2"]
        assert runtime.pending_windows.first_arrived(0, "u17") == start + 100.0


@pytest.mark.asyncio
async def test_ingest_forgets_a_window_only_after_the_broker_acked_it(worker_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    open_while_unacked: list[bool] = []

    class Delivery:
        """An ack that notes whether the window was still in the table while the flush waited for it."""

        def __await__(self):  # type: ignore[no-untyped-def]
            open_while_unacked.append("u4" in agents.open_windows)
            yield from asyncio.sleep(0).__await__()

    monkeypatch.setattr(agents.windows_topic, "send", AsyncMock(side_effect=lambda **_: Delivery()))
    async with agents.ingest.test_context() as agent:
        await handled(agent, (event("u4", 0), b"u4"))
        assert "u4" in agents.open_windows
        await handled(agent, (event("u4", 1, kind="purchase", item="jazz-1"), b"u4"))
    assert open_while_unacked == [True]
    assert "u4" not in agents.open_windows


def chained(monkeypatch) -> tuple[AsyncMock, AsyncMock, AsyncMock, AsyncMock]:  # type: ignore[no-untyped-def]
    """A worker running every stage; its topic sends replaced: windows, weights, recommendations, dead letters."""
    sends = tuple(AsyncMock(side_effect=lambda **_: acked()) for _ in range(4))
    monkeypatch.setattr(agents, "CHAINS_STAGES", True)
    for topic, send in zip((agents.windows_topic, agents.weights_topic, agents.recommendations_topic,
                            agent_support.dead_letter_topic), sends, strict=True):
        monkeypatch.setattr(topic, "send", send)
    return sends  # type: ignore[return-value]


@pytest.mark.asyncio
async def test_ingest_of_a_worker_running_every_stage_weighs_and_ranks_its_windows(worker_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    windows, weights, recommendations, dead = chained(monkeypatch)
    monkeypatch.setattr(runtime, "metrics", WorkerMetrics())
    async with agents.ingest.test_context() as agent:
        await handled(agent, (event("u20", 0), b"u20"), (event("u20", 1, "search", None, "jazz records"), b"u20"),
                      (event("u21", 0, "purchase", "space-1"), b"u21"))
        assert "u20" not in agents.open_windows and "u21" not in agents.open_windows
        states = {user: UserState.from_bytes(agents.user_states[user]) for user in ("u20", "u21")}
    measured = runtime.metrics.registry.get_sample_value
    assert measured("driftrec_window_wait_seconds_count") == 2  # two windows flushed (a search, a purchase)
    assert measured("driftrec_weigh_step_seconds_count") == 1  # one weigh step (its states acked once, below)
    assert windows.await_count == 0 and dead.await_count == 0
    assert (states["u20"].n_events, states["u21"].n_events) == (2, 1)
    assert int(np.argmax(states["u20"].query)) == TopicEncoder.words.index("jazz")  # the query was encoded
    assert agents.user_states.changelog_acked.await_count == 1  # type: ignore[attr-defined]
    updates = {u.user_id: u for u in (WeightUpdate.from_json(c.kwargs["value"]) for c in weights.await_args_list)}
    assert (updates["u20"].trigger_event_id, updates["u21"].trigger_event_id) == ("u20-1", "u21-0")
    lists = {c.kwargs["key"]: orjson.loads(c.kwargs["value"]) for c in recommendations.await_args_list}
    assert "space-1" not in [item["item_id"] for item in lists[b"u21"]["items"]]  # seen: not recommended


def failing_encoder(monkeypatch, worker_runtime, failures: int) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """The encoder fails its first `failures` calls (ZeroDivisionError), then works; returns the calls' texts. The
    retries wait 1 ms, doubling."""
    calls: list[list[str]] = []
    encode = worker_runtime.encoder.encode

    def flaky(texts):  # type: ignore[no-untyped-def]
        calls.append(list(texts))
        return 1 / 0 if len(calls) <= failures else encode(texts)

    monkeypatch.setattr(worker_runtime.encoder, "encode", flaky)
    monkeypatch.setattr(worker_runtime, "recent_queries", RecentQueries(16))  # no vector remembered
    monkeypatch.setattr(worker_runtime, "settings", replace(worker_runtime.settings, encoder_backoff_s=0.001))
    return calls


@pytest.mark.asyncio
async def test_windows_the_encoder_fails_on_in_ingest_are_dead_lettered(worker_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    windows, weights, _, dead = chained(monkeypatch)
    calls = failing_encoder(monkeypatch, worker_runtime, failures=100)
    async with agents.ingest.test_context() as agent:
        await handled(agent, (event("u22", 0), b"u22"), (event("u22", 1, "search", None, "hiking maps"), b"u22"))
        assert "u22" not in agents.open_windows and "u22" not in agents.user_states
    assert len(calls) == worker_runtime.settings.encoder_attempts == 4  # tried again before dead-lettering
    assert windows.await_count == 0 and weights.await_count == 0
    [failed] = dead.await_args_list
    record = orjson.loads(failed.kwargs["value"])
    assert record["reason"] == "internal error: ZeroDivisionError: division by zero"
    assert [e["event_id"] for e in orjson.loads(record["value"])] == ["u22-0", "u22-1"]
    assert (record["partition"], record["offset"]) == (0, 1)


@pytest.mark.asyncio
async def test_a_transient_encoder_failure_is_tried_again_not_dead_lettered(worker_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _, weights, _, dead = chained(monkeypatch)
    calls = failing_encoder(monkeypatch, worker_runtime, failures=2)
    async with agents.ingest.test_context() as agent:
        await handled(agent, (event("u25", 0, "search", None, "jazz records"), b"u25"))
        state = UserState.from_bytes(agents.user_states["u25"])
    assert calls == [["jazz records"]] * 3 and dead.await_count == 0
    assert state.query_ts > 0 and int(np.argmax(state.query)) == TopicEncoder.words.index("jazz")
    assert weights.await_count == 1


@pytest.mark.asyncio
async def test_a_window_without_a_search_is_weighed_when_the_encoder_fails(worker_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _, weights, _, dead = chained(monkeypatch)
    failing_encoder(monkeypatch, worker_runtime, failures=100)
    async with agents.ingest.test_context() as agent:
        await handled(agent, (event("u26", 0, "purchase", "space-1"), b"u26"),
                      (event("u27", 0, "search", None, "space walks"), b"u27"))
        assert UserState.from_bytes(agents.user_states["u26"]).seen.recent == ("space-1",)
        assert "u27" not in agents.user_states
    assert [orjson.loads(c.kwargs["value"])["user_id"] for c in weights.await_args_list] == ["u26"]
    [failed] = dead.await_args_list
    assert [e["event_id"] for e in orjson.loads(orjson.loads(failed.kwargs["value"])["value"])] == ["u27-0"]


@pytest.mark.asyncio
async def test_a_window_the_model_fails_on_in_ingest_is_dead_lettered_alone(worker_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _, weights, _, dead = chained(monkeypatch)
    real_apply = agents.apply_windows

    def failing_for_u24(raw_states, windows):  # type: ignore[no-untyped-def]
        if "u24" in raw_states:
            raise ValueError("a bug in learning")
        return real_apply(raw_states, windows)

    monkeypatch.setattr(agents, "apply_windows", failing_for_u24)
    async with agents.ingest.test_context() as agent:
        await handled(agent, (event("u23", 0, "purchase", "jazz-0"), b"u23"),
                      (event("u24", 0, "purchase", "jazz-1"), b"u24"))
        assert "u24" not in agents.open_windows and UserState.from_bytes(agents.user_states["u23"]).n_events == 1
    assert [WeightUpdate.from_json(c.kwargs["value"]).user_id for c in weights.await_args_list] == ["u23"]
    [failed] = dead.await_args_list
    record = orjson.loads(failed.kwargs["value"])
    assert record["reason"] == "internal error: ValueError: a bug in learning"
    assert [e["event_id"] for e in orjson.loads(record["value"])] == ["u24-0"]


@pytest.mark.asyncio
async def test_encode_attaches_query_vectors(worker_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    encoded = AsyncMock()
    monkeypatch.setattr(encode_agent.encoded_topic, "send", encoded)
    window = [{"event_id": "u1-0", "user_id": "u1", "kind": "search", "ts": 1, "query": "jazz records",
               "source": "t:0:0", "arrived_ms": 1.0}]
    async with encode_agent.encode.test_context() as agent:
        await agent.put(orjson.dumps(window), key=b"u1")
        await settled(lambda: encoded.await_count >= 1)
    vector = EncodedWindow.from_bytes(encoded.await_args.kwargs["value"]).query_vector("u1-0")
    assert vector is not None
    assert int(np.argmax(vector)) == TopicEncoder.words.index("jazz")


@pytest.mark.asyncio
async def test_encode_dead_letters_a_record_that_is_not_a_window(worker_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    encoded, dead = AsyncMock(), AsyncMock(side_effect=lambda **_: acked())
    monkeypatch.setattr(encode_agent.encoded_topic, "send", encoded)
    monkeypatch.setattr(agent_support.dead_letter_topic, "send", dead)
    window = [{"event_id": "u4-0", "user_id": "u4", "kind": "view", "ts": 1, "item_id": "jazz-0",
               "source": "t:0:0", "arrived_ms": 1.0}]
    async with encode_agent.encode.test_context() as agent:
        for raw in (b"not json", orjson.dumps([]), orjson.dumps(window)):
            await agent.put(raw, key=b"u4")
        await settled(lambda: encoded.await_count >= 1 and dead.await_count >= 2)
    [sent] = encoded.await_args_list
    assert orjson.loads(sent.kwargs["value"])["events"] == window
    reasons = [orjson.loads(call.kwargs["value"])["reason"] for call in dead.await_args_list]
    assert len(reasons) == 2 and reasons[0].startswith("internal error: JSONDecodeError")
    assert reasons[1].startswith("internal error: ValueError: not a window")


@pytest.mark.asyncio
async def test_weigh_updates_state_and_emits_weights(worker_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    weights, recommendations = (AsyncMock(side_effect=lambda **_: acked()) for _ in range(2))
    monkeypatch.setattr(agents.weights_topic, "send", weights)
    monkeypatch.setattr(agents.recommendations_topic, "send", recommendations)
    window = [{"event_id": f"u2-{n}", "user_id": "u2", "kind": "view", "ts": 1000 + n, "item_id": f"hiking-{n}",
               "source": f"t:0:{n}", "arrived_ms": 1.0} for n in range(3)]
    redelivered = window + window
    async with weigh_agent.weigh.test_context() as agent:
        await agent.put(orjson.dumps({"events": redelivered, "queries": {}}), key=b"u2")
        await settled(lambda: weights.await_count >= 1)
        state = UserState.from_bytes(agents.user_states["u2"])
    updates = [WeightUpdate.from_json(call.kwargs["value"]) for call in weights.await_args_list]
    assert [u.version for u in updates] == [3]
    assert state.seen.recent == ("hiking-0", "hiking-1", "hiking-2")
    assert b'"seen"' not in weights.await_args_list[-1].kwargs["value"]  # the update carries no seen items
    assert int(np.argmax(updates[-1].long_term)) == TopicEncoder.words.index("hiking")


def weights_and_dead_letters(monkeypatch) -> tuple[AsyncMock, AsyncMock]:  # type: ignore[no-untyped-def]
    """The weigh step's sends replaced, every one acked: the weights and dead-letter fakes (lists acked unseen)."""
    weights, dead = (AsyncMock(side_effect=lambda **_: acked()) for _ in range(2))
    monkeypatch.setattr(agents.weights_topic, "send", weights)
    monkeypatch.setattr(agents.recommendations_topic, "send", AsyncMock(side_effect=lambda **_: acked()))
    monkeypatch.setattr(agent_support.dead_letter_topic, "send", dead)
    return weights, dead


@pytest.mark.asyncio
async def test_weigh_applies_a_batch_of_users_and_dead_letters_only_the_bad_window(worker_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    weights, dead = weights_and_dead_letters(monkeypatch)

    def window(user: str, item: str, first: int, count: int) -> bytes:
        events = [{"event_id": f"{user}-{n}", "user_id": user, "kind": "view", "ts": 1000 + n, "item_id": f"{item}-{n}",
                   "source": f"t:0:{n}", "arrived_ms": 1.0} for n in range(first, first + count)]
        return orjson.dumps({"events": events, "queries": {}})

    unknown_kind = orjson.loads(window("u7", "jazz", 0, 1))
    unknown_kind["events"][0]["kind"] = "teleport"
    async with weigh_agent.weigh.test_context() as agent:
        for raw, key in [(window("u5", "jazz", 0, 2), b"u5"), (window("u6", "hiking", 0, 1), b"u6"),
                         (orjson.dumps(unknown_kind), b"u7"), (window("u5", "jazz", 2, 1), b"u5")]:
            await agent.put(raw, key=key)
        await settled(lambda: dead.await_count >= 1 and any(
            WeightUpdate.from_json(c.kwargs["value"]).trigger_event_id == "u5-2" for c in weights.await_args_list))
        seen_by_u6 = UserState.from_bytes(agents.user_states["u6"]).seen.recent
    updates = {u.user_id: u for u in (WeightUpdate.from_json(c.kwargs["value"]) for c in weights.await_args_list)}
    assert sorted(updates) == ["u5", "u6"]
    assert updates["u5"].version == 3 and updates["u5"].trigger_event_id == "u5-2"
    assert seen_by_u6 == ("hiking-0",)
    [dead_call] = dead.await_args_list
    dead_letter = orjson.loads(dead_call.kwargs["value"])
    assert dead_letter["reason"].startswith("internal error: AttributeError") and "teleport" in dead_letter["reason"]
    source = (dead_letter["topic"], dead_letter["partition"], dead_letter["offset"])
    assert source == (agents.settings.encoded_topic, 0, 2)  # the third message put, where it was read


@pytest.mark.asyncio
async def test_weigh_dead_letters_a_record_that_is_not_an_encoded_window(worker_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    weights, dead = weights_and_dead_letters(monkeypatch)
    events = [{"event_id": "u61-0", "user_id": "u61", "kind": "view", "ts": 1000, "item_id": "jazz-0",
               "source": "t:0:0", "arrived_ms": 1.0}]
    records = [b"not json", orjson.dumps({"events": [], "queries": {}}),
               orjson.dumps({"events": events, "queries": {"u61-0": "AAA"}}),  # not base64
               orjson.dumps({"events": events, "queries": {}})]
    async with weigh_agent.weigh.test_context() as agent:
        for raw in records:
            await agent.put(raw, key=b"u61")
        await settled(lambda: weights.await_count >= 1 and dead.await_count >= 3)
    assert [WeightUpdate.from_json(c.kwargs["value"]).user_id for c in weights.await_args_list] == ["u61"]
    letters = [orjson.loads(c.kwargs["value"]) for c in dead.await_args_list]
    assert [letter["offset"] for letter in letters] == [0, 1, 2]
    assert [letter["reason"].split(":")[1].strip() for letter in letters] == ["JSONDecodeError", "IndexError",
                                                                              "Error"]


@pytest.mark.asyncio
async def test_weigh_ranks_the_users_it_updated_excluding_what_they_saw(worker_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    recommendations = AsyncMock(side_effect=lambda **_: acked())
    monkeypatch.setattr(agents.weights_topic, "send", AsyncMock(side_effect=lambda **_: acked()))
    monkeypatch.setattr(agents.recommendations_topic, "send", recommendations)
    windows = {user: [{"event_id": f"{user}-0", "user_id": user, "kind": "purchase", "ts": 1, "item_id": item,
                       "source": f"t:0:{n}", "arrived_ms": 1.0}]
               for n, (user, item) in enumerate([("u3", "cooking-0"), ("u8", "jazz-1")])}
    async with weigh_agent.weigh.test_context() as agent:
        for user, window in windows.items():
            await agent.put(orjson.dumps({"events": window, "queries": {}}), key=user.encode())
        await settled(lambda: recommendations.await_count >= 2)
    lists = {rec["user_id"]: [item["item_id"] for item in rec["items"]]
             for rec in (orjson.loads(call.kwargs["value"]) for call in recommendations.await_args_list)}
    assert sorted(lists) == ["u3", "u8"] and all(len(ids) == 10 for ids in lists.values())
    # the nearest items come first, beside the one item someone else bought (popular)
    assert "cooking-0" not in lists["u3"] and {"cooking-1", "cooking-2"} <= set(lists["u3"][:3])
    assert "jazz-1" not in lists["u8"] and {"jazz-0", "jazz-2"} <= set(lists["u8"][:3])


@pytest.mark.asyncio
async def test_a_step_writes_nothing_for_partitions_a_rebalance_began_to_take_away(worker_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A revocation that begins while the step waits for its increments to be folded suspends the flow: the step
    sends no WeightUpdate and no list for the users of its messages (their partitions' new owner fetches them)."""
    weights, recommendations = (AsyncMock(side_effect=lambda **_: acked()) for _ in range(2))
    monkeypatch.setattr(agents.weights_topic, "send", weights)
    monkeypatch.setattr(agents.recommendations_topic, "send", recommendations)
    ranked: list[int] = []
    recommend = worker_runtime.model.recommend
    monkeypatch.setattr(worker_runtime.model, "recommend", lambda updates, k: ranked.append(1) or recommend(updates, k))

    async def revoked_while_folding(offset: int, timeout_s: float) -> bool:
        app.flow_control.suspend()  # what Faust does first when a revocation begins
        return True

    monkeypatch.setattr(worker_runtime.shared_log, "wait_folded", revoked_while_folding)
    window = [{"event_id": "u40-0", "user_id": "u40", "kind": "view", "ts": 1, "item_id": "jazz-1",
               "source": "t:0:0", "arrived_ms": 1.0}]
    async with weigh_agent.weigh.test_context() as agent:
        await agent.put(orjson.dumps({"events": window, "queries": {}}), key=b"u40")
        await settled(lambda: bool(ranked))
        await asyncio.sleep(0.2)
        app.flow_control.resume()
    assert ranked and UserState.from_bytes(agents.user_states["u40"]).n_events == 1
    assert weights.await_count == recommendations.await_count == 0


def failed_delivery(error: Exception) -> asyncio.Future[None]:
    """A send's delivery that the broker refused."""
    delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    delivery.set_exception(error)
    return delivery


@pytest.mark.parametrize("refused", ["recommendation", "state"])
@pytest.mark.asyncio
async def test_an_output_or_state_the_broker_refuses_dead_letters_its_window(worker_runtime, monkeypatch,  # type: ignore[no-untyped-def]
                                                                            refused: str) -> None:
    """Faust's flush before a commit does not raise when a send failed: the weigh step waits for its outputs' and
    its states' acks itself, tries the window again, then dead-letters it with the broker's reason."""
    too_large = RuntimeError("MessageSizeTooLargeError: the record is larger than max.message.bytes")
    weights, dead = (AsyncMock(side_effect=lambda **_: acked()) for _ in range(2))
    recommendations = AsyncMock(side_effect=lambda **_: failed_delivery(too_large) if refused == "recommendation"
                                else acked())
    monkeypatch.setattr(agents.weights_topic, "send", weights)
    monkeypatch.setattr(agents.recommendations_topic, "send", recommendations)
    monkeypatch.setattr(agent_support.dead_letter_topic, "send", dead)
    if refused == "state":
        monkeypatch.setattr(agents.user_states, "changelog_acked", AsyncMock(side_effect=too_large))
    window = [{"event_id": "u32-0", "user_id": "u32", "kind": "view", "ts": 1, "item_id": "jazz-1",
               "source": "t:0:0", "arrived_ms": 1.0}]
    async with weigh_agent.weigh.test_context() as agent:
        await agent.put(orjson.dumps({"events": window, "queries": {}}), key=b"u32")
        await settled(lambda: dead.await_count >= 1)
    [dead_call] = dead.await_args_list  # after the batch and the window alone were both refused
    dead_letter = orjson.loads(dead_call.kwargs["value"])
    assert dead_letter["reason"] == f"internal error: RuntimeError: {too_large}"
    assert orjson.loads(dead_letter["value"])["events"][0]["event_id"] == "u32-0"
    assert recommendations.await_count == (2 if refused == "recommendation" else 0)


@pytest.mark.asyncio
async def test_weigh_dead_letters_the_weights_of_a_batch_the_scorer_fails_on(worker_runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    weights, dead = (AsyncMock(side_effect=lambda **_: acked()) for _ in range(2))
    monkeypatch.setattr(agents.weights_topic, "send", weights)
    monkeypatch.setattr(agent_support.dead_letter_topic, "send", dead)
    monkeypatch.setattr(worker_runtime.model, "recommend", lambda updates, k: 1 / 0)
    window = [{"event_id": "u9-0", "user_id": "u9", "kind": "view", "ts": 1, "item_id": "space-1",
               "source": "t:0:0", "arrived_ms": 1.0}]
    async with weigh_agent.weigh.test_context() as agent:
        await agent.put(orjson.dumps({"events": window, "queries": {}}), key=b"u9")
        await settled(lambda: dead.await_count >= 1)
    [sent] = weights.await_args_list
    [dead_call] = dead.await_args_list
    dead_letter = orjson.loads(dead_call.kwargs["value"])
    assert dead_letter["reason"] == "internal error: ZeroDivisionError: division by zero"
    assert (dead_letter["topic"], dead_letter["offset"]) == (agents.settings.encoded_topic, 0)
    assert WeightUpdate.from_json(sent.kwargs["value"]).version == 1
    assert WeightUpdate.from_json(dead_letter["value"].encode()).user_id == "u9"
