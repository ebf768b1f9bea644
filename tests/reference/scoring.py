"""R, F and M scores: fixed thresholds, or quintiles of the population.

Thresholds: R is 5 while the days since the last purchase are at most the first bound, and
one less for each bound exceeded; F and M are 1 plus the number of bounds reached.

Quintiles: "each value scores 1 + floor(5 x share of customers below it)", where "below"
means worse: more days for R, fewer orders or less spend for F and M.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence

__all__ = ["Quintiles", "at_least_score", "recency_score"]


def recency_score(days: int, bounds: Sequence[int]) -> int:
    """``bounds`` are the most days for R = 5, 4, 3, 2; more than the last scores 1."""
    score = 5
    for bound in bounds:
        if days > bound:
            score -= 1
    return score


def at_least_score(value: int, bounds: Sequence[int]) -> int:
    """``bounds`` are the least value for a score of 2, 3, 4, 5; below the first scores 1."""
    score = 1
    for bound in bounds:
        if value >= bound:
            score += 1
    return score


class Quintiles:
    """Scores relative to one population of (recency days, orders, spend) triples."""

    def __init__(self, population: Sequence[tuple[int, int, int]]) -> None:
        self.size = len(population)
        self._days = sorted(days for days, _, _ in population)
        self._orders = sorted(orders for _, orders, _ in population)
        self._spend = sorted(spend for _, _, spend in population)

    def _score(self, worse: int) -> int:
        return 1 + (5 * worse) // self.size

    def recency(self, days: int) -> int:
        """Worse is more days: the customers with strictly more days than ``days``."""
        return self._score(self.size - bisect_right(self._days, days))

    def frequency(self, orders: int) -> int:
        return self._score(bisect_left(self._orders, orders))

    def monetary(self, spend_minor: int) -> int:
        return self._score(bisect_left(self._spend, spend_minor))
