"""The matching engine core, with no I/O, clock or randomness.

``MatchingEngine`` is the native core (``native.pyx``, compiled by ``make setup``) the matching node
runs; ``ReferenceEngine`` is a slow, obviously-correct plain-Python model of the same rules that
the tests hold it to, answer for answer and checksum for checksum.
"""

from meridian_hotpath.engine.native import MatchingEngine
from meridian_hotpath.engine.reference import ReferenceEngine
from meridian_hotpath.engine.state import OrderView

__all__ = ["MatchingEngine", "OrderView", "ReferenceEngine"]
