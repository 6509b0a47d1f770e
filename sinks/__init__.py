"""Ranking and output: factor scores over the catalogue, weighted fusion, top-k with reasons, and sinks."""

from sinks.catalogue import Catalogue, CatalogueItem
from sinks.recommendation import RecommendedItem, UserRecommendation

__all__ = ["Catalogue", "CatalogueItem", "RecommendedItem", "UserRecommendation"]
