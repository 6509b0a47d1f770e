import orjson
import pytest

from streams.events import InvalidRecordError, Limits, parse_event, parse_item

NOW = 1_700_000_000_000


def event(**fields: object) -> bytes:
    base = {"event_id": "e1", "user_id": "u1", "kind": "view", "item_id": "i1", "ts": NOW}
    base.update(fields)
    return orjson.dumps({k: v for k, v in base.items() if v is not None})


def test_valid_event_round_trips() -> None:
    parsed = parse_event(event(kind="rating", value=4.5), NOW)
    assert (parsed.user_id, parsed.kind, parsed.item_id, parsed.value) == ("u1", "rating", "i1", 4.5)
    assert parse_event(orjson.dumps(parsed.to_dict()), NOW) == parsed


def test_search_needs_query_not_item() -> None:
    parsed = parse_event(event(kind="search", item_id=None, query="jazz piano"), NOW)
    assert parsed.query == "jazz piano" and parsed.item_id is None
    with pytest.raises(InvalidRecordError, match="missing required field 'query'"):
        parse_event(event(kind="search", item_id=None), NOW)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "tombstone"),
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (event(kind="teleport"), "unknown event kind"),
        (event(user_id=7), "field 'user_id' must be a string"),
        (event(item_id=None), "missing required field 'item_id'"),
        (event(ts="yesterday"), "field 'ts' must be an integer"),
        (event(ts=NOW + 10 * 86_400_000), "too far in the future"),
        (event(ts=1), "too far in the past"),
        (event(kind="rating"), "a rating needs a numeric 'value'"),
        (event(value=True), "field 'value' must be a number"),
        (b'{"event_id":"e","user_id":"u","kind":"view","item_id":"i","ts":1700000000000,"value":NaN}',
         "malformed JSON"),
        (event(item_id="x" * 3000), "over the limit"),
        (event(user_id="  "), "is empty"),
    ],
)
def test_invalid_events_name_their_reason(raw: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidRecordError, match=reason):
        parse_event(raw, NOW)


def test_oversized_payload_rejected_before_parsing() -> None:
    with pytest.raises(InvalidRecordError, match="exceeds the limit of 100"):
        parse_event(event(query="q" * 200), NOW, Limits(max_payload_bytes=100))


def test_item_validation() -> None:
    item = parse_item(orjson.dumps({"item_id": "i", "title": "Heat", "tags": ["crime"], "ts": NOW}), NOW)
    assert item.tags == ("crime",)
    with pytest.raises(InvalidRecordError, match="'tags' must be a list of strings"):
        parse_item(orjson.dumps({"item_id": "i", "title": "Heat", "tags": [1], "ts": NOW}), NOW)


def test_an_impression_names_its_list_and_the_items_displayed() -> None:
    raw = orjson.dumps({"event_id": "i1", "user_id": "u", "kind": "impression", "ts": NOW, "list_id": "u/e7",
                        "item_ids": ["a", "b"]})
    event = parse_event(raw, NOW)
    assert (event.list_id, event.item_ids, event.item_id) == ("u/e7", ("a", "b"), None)
    assert parse_event(orjson.dumps(event.to_dict()), NOW) == event


@pytest.mark.parametrize(("fields", "reason"), [
    ({"item_ids": ["a"]}, "missing required field 'list_id'"),
    ({"list_id": "l"}, "needs 'item_ids'"),
    ({"list_id": "l", "item_ids": []}, "needs 'item_ids'"),
    ({"list_id": "l", "item_ids": ["a", 3]}, "non-empty strings"),
    ({"list_id": "l", "item_ids": ["a"] * 201}, "201 items, over the limit of 200"),
])
def test_a_bad_impression_says_what_is_wrong(fields: dict, reason: str) -> None:  # type: ignore[type-arg]
    raw = orjson.dumps({"event_id": "i1", "user_id": "u", "kind": "impression", "ts": NOW, **fields})
    with pytest.raises(InvalidRecordError, match=reason):
        parse_event(raw, NOW)
