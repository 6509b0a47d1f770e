"""The catalogue's lifecycle: an item whose text changes is encoded again, everywhere its vector is used."""

import torch

from encoders.vector_cache import VectorCache
from sinks.catalogue import Catalogue
from sinks.online_model import OnlineModel
from streams.catalogue_data import upsert_items
from streams.events import Item
from tests.unit.test_encoders import LetterEncoder


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
