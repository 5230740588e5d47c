"""Coverage in embedding space: k-center greedy over unit vectors, by cosine distance, optionally weighted.

k-center greedy (the coreset selection of Sener and Savarese, 2018) starts from the most central point and
then, again and again, picks the point farthest from everything picked so far, so that k picks leave no
point far from its nearest pick. It costs one matrix-vector product per pick (n x k in all) and never holds
an n x n matrix. Points that repeat one another (several rationales of one question, embedded by the
question alone) are at distance 0 from each other, so one of them is picked before a second of any group,
and the repeats come last, in input order; k-means would put several of its k centroids on one point.

With a `hardness` in [0, 1] per point and a `weight`, each pick maximises
(1 - weight) x (its distance to the picks so far / the largest such distance) + weight x hardness, starting
from the hardest point: weight 0 is coverage alone, 1 the hardest first; the distance is divided by the
largest one so that the two terms share a scale whatever the embedding space's spread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Coverage:
    """The result of k-center greedy over n points."""

    picks: list[int]
    """The picked points' indices, in the order they were picked."""
    gains: list[float]
    """For each pick, its cosine distance to the nearest earlier pick when it was picked (1.0 for the first,
    which has none): how much new ground it covered."""
    nearest: list[int]
    """For every point, the pick nearest to it (a pick is its own)."""
    distance: list[float]
    """For every point, its cosine distance to that pick (0 for a pick)."""


def k_center(
    vectors: np.ndarray, k: int, hardness: np.ndarray | None = None, weight: float = 0.0
) -> Coverage:
    """Pick `k` of the rows of `vectors` (unit length) by k-center greedy, each pick's value weighted towards
    `hardness` by `weight` when given; ties go to the earlier row."""
    import numpy as np

    n = len(vectors)
    k = min(k, n)
    if k == 0:
        return Coverage([], [], [-1] * n, [float("inf")] * n)
    # Unweighted, the most central point first (the one nearest the mean direction): a representative start.
    first = int(np.argmax(vectors @ vectors.mean(axis=0) if hardness is None else hardness))
    picks, gains = [first], [1.0]
    nearest = np.full(n, first, dtype=np.int64)
    distance = _cosine_distance(vectors, first)
    distance[first] = -1.0  # never picked again
    for _ in range(k - 1):
        pick = int(np.argmax(distance if hardness is None else _weighted(distance, hardness, weight)))
        picks.append(pick)
        gains.append(float(max(distance[pick], 0.0)))
        closer = _cosine_distance(vectors, pick)
        better = closer < distance
        nearest[better] = pick
        distance = np.minimum(distance, closer)
        distance[pick] = -1.0
    for pick in picks:
        nearest[pick], distance[pick] = pick, 0.0
    return Coverage(
        picks=picks,
        gains=[round(g, 6) for g in gains],
        nearest=[int(i) for i in nearest],
        distance=[round(float(max(d, 0.0)), 6) for d in distance],
    )


def _weighted(distance: np.ndarray, hardness: np.ndarray, weight: float) -> np.ndarray:
    """Each point's value as a pick: its share of the largest distance to the picks, and its hardness."""
    import numpy as np

    top = float(distance.max())
    coverage = np.clip(distance, 0.0, None) / top if top > 0 else np.zeros_like(distance)
    value = (1.0 - weight) * coverage + weight * hardness
    return np.where(distance < 0, -np.inf, value)  # a pick is never picked again


def _cosine_distance(vectors: np.ndarray, row: int) -> np.ndarray:
    import numpy as np

    return np.asarray(1.0 - vectors @ vectors[row], dtype=np.float64)
