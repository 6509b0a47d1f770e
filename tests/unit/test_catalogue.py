"""The catalogue's lifecycle: an item whose text changes is encoded again, everywhere its vector is used; a
removed item is recommended by no factor (and events naming it are unknown items) until it is published again."""

import asyncio
from types import SimpleNamespace

import numpy as np
import orjson
import pytest
import torch

from encoders.vector_cache import VectorCache
from sinks.catalogue import Catalogue, CatalogueItem
from sinks.online_model import OnlineModel
from sinks.shared_increments import SharedIncrement
from streams.catalogue_data import upsert_items
from streams.catalogue_follower import item_change
from streams.dead_letter import SourcePosition
from streams.events import InvalidRecordError, Item, Limits
from streams.ingest_routing import Accepted, Rejected, route_event
from streams.shared_log import CATALOGUE_WAIT_S, items_known
from tests.unit.test_encoders import LetterEncoder
from weighting.factors import Factor
from weighting.user_update import ProfileEvent
from weighting.weight_update import WeightUpdate

DAY = 86_400_000


def test_an_item_whose_text_changed_gets_its_new_vector_in_every_factor(tmp_path) -> None:  # type: ignore[no-untyped-def]
    letters = LetterEncoder()
    model = OnlineModel(Catalogue(letters.dim))
    cache = VectorCache(tmp_path / "vectors", letters.model_name)
    assert upsert_items(model.catalogue, [Item("i1", "a cab", 1), Item("i2", "dd", 1)], letters, cache) == 2
    old_table = model.sequence.item_table().clone()

    assert upsert_items(model.catalogue, [Item("i1", "a bad cab", 2)], letters, cache) == 1
    assert model.catalogue.vector("i1").tolist() == [4.0, 3.0, 2.0, 2.0]
    assert model.catalogue.matrix[0].tolist() == [4.0, 3.0, 2.0, 2.0]  # the text factors' matrix
    new_table = model.sequence.item_table()
    rows = torch.arange(2)
    assert torch.equal(new_table, model.sequence.network.item_vectors(model.catalogue.matrix, rows).detach())
    assert not torch.equal(new_table[0], old_table[0]) and torch.equal(new_table[1], old_table[1])
    assert model.catalogue.items[0].ts == 1  # an update keeps the time the item entered the catalogue


def catalogue_of_two_topics() -> Catalogue:
    """Five items on two topics; a2 entered last (the freshest)."""
    vectors = {"a1": [1, 0, 0], "a2": [0.95, 0.05, 0], "a3": [0.8, 0.2, 0], "b1": [0, 1, 0], "b2": [0, 0.9, 0.1]}
    catalogue = Catalogue(3)
    catalogue.upsert([CatalogueItem(i, i, (i[0],), 5 * DAY if i == "a2" else DAY) for i in vectors],
                     {i: np.asarray(v, np.float32) / np.linalg.norm(v) for i, v in vectors.items()})
    return catalogue


def factors_listing(model: OnlineModel, update: WeightUpdate, item_id: str) -> set[Factor]:
    """The factors whose own top list holds the item for this user (empty: the item is no candidate)."""
    _, batch = model.scorer.top_k([update], 3)
    found = np.flatnonzero(batch.rows == model.catalogue.index[item_id])
    return {Factor(f) for f in np.flatnonzero(batch.list_position[found[0]] < len(model.catalogue))} if len(
        found) else set()


def test_a_removed_item_is_recommended_by_no_factor_until_published_again() -> None:
    model = OnlineModel(catalogue_of_two_topics())
    for n in range(40):  # others view a1, then a2: counted, co-visited and followed
        state = model.learn(f"v{n}", model.new_state(), ProfileEvent(f"v{n}-1", "view", 6 * DAY, "a1"))
        model.learn(f"v{n}", state, ProfileEvent(f"v{n}-2", "view", 6 * DAY + 1000, "a2"))
    state = model.learn("u", model.new_state(), ProfileEvent("u-1", "purchase", 6 * DAY + 5000, "a1"))
    update = model.weight_update("u", state, 6 * DAY + 5000)
    assert set(Factor) - {Factor.QUERY} <= factors_listing(model, update, "a2")
    assert model.recommend([update], 3)[0].items[0].item_id == "a2"

    assert model.catalogue.remove(["a2", "never-published"]) == 1
    assert "a2" not in model.catalogue and "a3" in model.catalogue and model.catalogue.listed() == 4
    assert factors_listing(model, update, "a2") == set()
    remaining = [item.item_id for item in model.recommend([update], 5)[0].items]
    assert remaining[0] == "a3" and sorted(remaining) == ["a3", "b1", "b2"]  # every other unseen item

    model.catalogue.upsert([CatalogueItem("a2", "a2", ("a",), 7 * DAY)], {"a2": model.catalogue.vector("a2")})
    assert "a2" in model.catalogue and model.catalogue.listed() == 5
    assert model.recommend([update], 3)[0].items[0].item_id == "a2"


def test_an_event_naming_a_removed_item_is_dead_lettered_as_an_unknown_item() -> None:
    catalogue = catalogue_of_two_topics()
    catalogue.remove(["a2"])
    source = SourcePosition("events", 0, 7)
    for item, outcome in (("a1", Accepted), ("a2", Rejected)):
        value = orjson.dumps({"event_id": "e", "user_id": "u", "kind": "view", "ts": 6 * DAY, "item_id": item})
        routed = route_event(value, b"u", source, 6 * DAY, limits=Limits(), catalogue=catalogue)
        assert isinstance(routed, outcome)
    assert isinstance(routed, Rejected) and routed.reason == "unknown item 'a2'"


@pytest.mark.asyncio
async def test_the_fold_waits_for_no_item_known_to_be_removed() -> None:
    model = OnlineModel(catalogue_of_two_topics())
    model.catalogue.remove(["a2", "gone"])  # "gone": a tombstone whose item's records were compacted away
    runtime = SimpleNamespace(model=model)
    increments = [SharedIncrement(1, "a2", DAY, 1.0, ("a1",)), SharedIncrement(2, "a3", DAY, 1.0, ("gone",))]
    await asyncio.wait_for(items_known(runtime, increments), timeout=CATALOGUE_WAIT_S / 10)  # type: ignore[arg-type]


def test_an_items_record_publishes_its_item_and_a_tombstone_removes_the_item_keyed() -> None:
    value = orjson.dumps({"item_id": "i1", "title": "One", "ts": 6 * DAY, "tags": ["jazz"]})
    assert item_change(b"i1", value, 6 * DAY, Limits()) == ("i1", Item("i1", "One", 6 * DAY, None, ("jazz",)))
    assert item_change(b"i1", None, 6 * DAY, Limits()) == ("i1", None)
    for key, reason in ((None, "tombstone without a key"), (b"\xff", "tombstone whose key is not UTF-8")):
        with pytest.raises(InvalidRecordError, match=reason):
            item_change(key, None, 6 * DAY, Limits())
