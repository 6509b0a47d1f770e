"""The dead-letters command's pure parts: grouping by reason, selecting, and what a replay sends for each kind."""

import orjson

from sinks.online_model import OnlineModel, UserEvent
from sinks.shared_snapshot import shared_digest
from streams.dead_letter import DeadLetter, SourcePosition, dead_letter_record, parse_dead_letter
from streams.dead_letters import Outgoing, ReplayPlan, Selection, by_category, listing, parse_all, replay_records
from streams.events import BehaviorEvent, parse_event
from streams.windowing import WindowedEvent, encode_window
from tests.unit.test_shared_snapshot import ITEMS, catalogue, learned

T0 = 1_700_000_000_000
EVENTS = "driftrec-events"


def letter(value: bytes | None, reason: str, key: bytes | None = b"u1", topic: str = EVENTS) -> DeadLetter:
    """A dead letter as the topic carries it, read back."""
    return parse_dead_letter(dead_letter_record(value, key, reason, SourcePosition(topic, 1, 7), T0))


def window(user_id: str, n: int, topics: tuple[str, ...] = (EVENTS,)) -> list[WindowedEvent]:
    """A flushed window of `n` item events of `user_id`, read in turn from `topics`."""
    kinds = ("view", "click", "purchase")
    return [WindowedEvent.read_at(BehaviorEvent(f"{user_id}-e{i}", user_id, kinds[i % 3], T0 + i * 1000, ITEMS[i]),
                                  SourcePosition(topics[i % len(topics)], 2, 40 + i), T0 + i)
            for i in range(n)]


def test_dead_letters_are_grouped_by_reason_category_most_frequent_first() -> None:
    letters = [letter(b"{", "malformed JSON: unexpected end"), letter(b"a", "unknown item 'x'"),
               letter(b"b", "unknown item 'y'"), letter(b"[", "malformed JSON: bad"), letter(b"c", "unknown item 'z'")]
    groups = by_category(letters)
    assert {category: [d.value for d in group] for category, group in groups.items()} == {
        "unknown item": [b"a", b"b", b"c"], "malformed JSON": [b"{", b"["]}
    assert list(groups) == ["unknown item", "malformed JSON"]
    assert listing(letters, samples=1) == [
        "      3  unknown item",
        f"           {EVENTS}[1]@7  unknown item 'x'",
        "             value: a",
        "      2  malformed JSON",
        f"           {EVENTS}[1]@7  malformed JSON: unexpected end",
        "             value: {",
    ]


def test_a_selection_matches_a_part_of_the_reason_its_category_and_the_source_topic() -> None:
    unknown, items = letter(b"a", "unknown item 'x'"), letter(b"i", "missing required field 'title'", None, "items")
    assert [d for d in (unknown, items) if Selection().matches(d)] == [unknown, items]
    assert [d for d in (unknown, items) if Selection("Unknown Item").matches(d)] == [unknown]
    assert [d for d in (unknown, items) if Selection("'title'").matches(d)] == [items]
    assert [d for d in (unknown, items) if Selection(source_topic="items").matches(d)] == [items]
    assert not Selection("unknown", "items").matches(unknown)
    assert not Selection("item 'y'").matches(unknown)


def test_records_that_are_not_dead_letters_are_counted_apart() -> None:
    good = dead_letter_record(b"v", b"k", "tombstone (null value)", SourcePosition("t", 0, 1), T0)
    letters, unreadable = parse_all([good, b"{not json", None, b'{"reason": "r"}', good])
    assert [d.value for d in letters] == [b"v", b"v"] and unreadable == 3


def test_a_rejected_record_goes_back_byte_for_byte_to_its_source_topic() -> None:
    for value, key in [(b"{this is not json", b"user-0000"), (b"\xff\xfe\x00 not utf-8", b"\x9f\x00"),
                       (None, b"user-0001")]:
        assert replay_records(letter(value, "malformed JSON: x", key)) == [Outgoing(EVENTS, key, value)]
    item = b'{"item_id": "i9", "title": "", "ts": 1}'
    assert replay_records(letter(item, "field 'title' is empty", b"i9", "driftrec-items")) == [
        Outgoing("driftrec-items", b"i9", item)]


def test_a_windows_dead_letter_goes_back_as_its_events_each_to_its_own_topic() -> None:
    flushed = window("u7", 4, topics=(EVENTS, "driftrec-events-mobile"))
    chained = letter(encode_window(flushed), "internal error: RuntimeError: boom", b"u7")
    encoded = orjson.dumps({"events": [item.to_dict() for item in flushed], "queries": {}})
    from_weigh = letter(encoded, "internal error: KeyError: 'x'", b"u7", "driftrec-encoded")
    from_encode = letter(encode_window(flushed), "internal error: OSError: cuda", None, "driftrec-windows")
    expected = [Outgoing(topic, b"u7", orjson.dumps(item.event.to_dict()))
                for item, topic in zip(flushed, [EVENTS, "driftrec-events-mobile"] * 2, strict=True)]
    for dead in (chained, from_weigh, from_encode):
        assert replay_records(dead) == expected
    assert [parse_event(out.value, T0) for out in expected] == [item.event for item in flushed]


def test_a_window_that_is_not_one_goes_back_byte_for_byte() -> None:
    for value in (b"[]", b'[{"event_id": "e1"}]', b'{"events": "none"}',
                  orjson.dumps([{**window("u1", 1)[0].to_dict(), "source": "no position"}])):
        dead = letter(value, "internal error: ValueError: not a window", None, "driftrec-windows")
        assert replay_records(dead) == [Outgoing("driftrec-windows", None, value)]


def test_a_weight_update_of_a_scoring_failure_is_not_replayed() -> None:
    update = orjson.dumps({"user_id": "u1", "ts": T0, "version": 3, "weights": {"short_term": 1.0},
                           "trigger_event_id": "e3", "arrived_ms": 0.0})
    rejected = letter(b"{", "malformed JSON: x")
    plan = ReplayPlan.of([letter(update, "internal error: RuntimeError: scorer"), rejected,
                          letter(encode_window(window("u1", 2)), "internal error: RuntimeError: x")])
    assert (plan.letters, plan.not_replayable) == (2, 1)
    assert [out.topic for out in plan.records] == [EVENTS] * 3 and plan.records[0] == Outgoing(EVENTS, b"u1", b"{")
    assert plan.lines(sent=False) == [
        f"would send 3 records of 2 dead letters: 3 to {EVENTS}",
        "not replayed: 1 WeightUpdates of a scoring failure (their events are applied; the user's next event ranks "
        "again)",
    ]
    assert ReplayPlan.of([rejected]).lines(sent=True) == [f"sent 1 records of 1 dead letters: 1 to {EVENTS}"]


def test_replaying_events_a_user_state_applied_changes_no_state_and_no_shared_signal() -> None:
    flushed = window("u1", 6)
    user_events = [UserEvent("u1", item.event.profile_event()) for item in flushed]
    model = OnlineModel(catalogue(ITEMS))
    states = learned(model, user_events)
    assert states["u1"].n_events == 6
    before = shared_digest(model)
    replayed = [parse_event(out.value, T0) for out in
                replay_records(letter(encode_window(flushed), "internal error: RuntimeError: boom"))]
    again = model.learn_and_fold(states, [UserEvent(e.user_id, e.profile_event()) for e in replayed])
    assert (again.applied, again.states, again.increments) == (0, {}, [])
    assert shared_digest(model) == before
    fresh = model.learn_batch({}, [UserEvent("u2", e.profile_event()) for e in replayed])  # another user applies them
    assert fresh.applied == 6 and fresh.states["u2"].n_events == 6
