"""The matching engine core: plain typed Python with no I/O, clock or randomness.

``MatchingEngine`` is the fast engine the matching node runs; ``ReferenceEngine`` is a slow,
obviously-correct model of the same rules that the tests hold it against.
"""

from meridian_hotpath.engine.book import OrderView
from meridian_hotpath.engine.core import MatchingEngine
from meridian_hotpath.engine.reference import ReferenceEngine

__all__ = ["MatchingEngine", "OrderView", "ReferenceEngine"]
