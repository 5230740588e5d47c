"""Bootstrap confidence intervals for evaluation: a model's accuracy, and one model's gain over another.

numpy's percentile bootstrap, seeded, so the same predictions always give the same interval. The gain
is a paired bootstrap (the same resampled items for both models), which is much tighter than two
separate intervals when both models find the same items hard.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

RESAMPLES = 1000
CONFIDENCE = 0.95


def bootstrap_ci(
    scores: Sequence[float], *, resamples: int = RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0
) -> tuple[float, float]:
    """The percentile interval of the mean of `scores` (1/0 for correct/wrong); (0, 0) when empty."""
    import numpy as np

    values = np.asarray(scores, dtype=float)
    if values.size == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    return _interval(means, confidence)


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    *,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> dict[str, Any]:
    """Mean of `a - b` over paired items, its percentile interval, and the share of resamples where a > b."""
    import numpy as np

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired scores need the same items: {x.size} against {y.size}")
    if x.size == 0:
        return {"diff": 0.0, "ci": [0.0, 0.0], "p_better": 0.0}
    rng = np.random.default_rng(seed)
    index = rng.integers(0, x.size, size=(resamples, x.size))
    diffs = (x[index] - y[index]).mean(axis=1)
    low, high = _interval(diffs, confidence)
    return {
        "diff": round(float((x - y).mean()), 4),
        "ci": [low, high],
        "p_better": round(float((diffs > 0).mean()), 4),
    }


def _interval(values: Any, confidence: float) -> tuple[float, float]:
    import numpy as np

    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return round(float(low), 4), round(float(high), 4)
