"""Fast ROUGE-L near-duplicate search: the score Self-Instruct filtered on (drop above 0.7), without its cost.

Self-Instruct scored each new instruction against every kept one with `rouge_score`, a Python
dynamic programme per pair: quadratic in records and in words. Here each text is tokenised once
(the same way `rouge_score`'s default tokenizer does: lower case, runs of [a-z0-9]), and a pair is
scored exactly only when two cheap upper bounds of its ROUGE-L F1 both exceed the threshold:

- F1 = 2 * LCS / (m + n) and LCS <= min(m, n): a length bound over all kept texts at once (numpy);
- LCS <= the multiset overlap of their words: summed from an inverted index (numpy per word).

The survivors get the exact LCS from a bit-parallel algorithm (Hyyro 2004) on Python integers, one
big-integer step per word of the candidate instead of m * n table cells.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Words as rouge_score's default tokenizer makes them (no stemming)."""
    return _TOKEN.findall(text.lower())


def rouge_l(a: list[str], b: list[str]) -> float:
    """ROUGE-L F1 of two token lists (symmetric)."""
    if not a or not b:
        return 0.0
    return 2.0 * lcs_length(a, b) / (len(a) + len(b))


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists, bit-parallel over `a`."""
    return _lcs_with_masks(_match_masks(a), len(a), b)


class RougeIndex:
    """A growing set of texts that answers "the most similar text above a threshold" by ROUGE-L F1."""

    def __init__(self) -> None:
        self._tokens: list[list[str]] = []
        self._masks: list[dict[str, int]] = []
        self._lengths = _Growable(np.int32)
        self._postings: dict[str, tuple[_Growable, _Growable]] = {}

    def __len__(self) -> int:
        return len(self._tokens)

    def add(self, tokens: list[str]) -> int:
        """Add a tokenised text; returns its index."""
        index = len(self._tokens)
        self._tokens.append(tokens)
        self._masks.append(_match_masks(tokens))
        self._lengths.append(len(tokens))
        for word, count in Counter(tokens).items():
            if word not in self._postings:
                self._postings[word] = (_Growable(np.int32), _Growable(np.int32))
            ids, counts = self._postings[word]
            ids.append(index)
            counts.append(count)
        return index

    def best_above(self, tokens: list[str], threshold: float) -> tuple[int, float] | None:
        """(index, score) of a kept text whose ROUGE-L F1 with `tokens` exceeds `threshold`, else None.

        Candidates are tried in order of their overlap bound, so the first exact score above the
        threshold is usually the best one; the search stops there.
        """
        n = len(self._tokens)
        if n == 0 or not tokens:
            return None
        m = len(tokens)
        lengths = self._lengths.view()
        # Bound 1: 2 * min(m, len) / (m + len) must exceed the threshold.
        length_ok = 2.0 * np.minimum(lengths, m) > threshold * (lengths + m)
        if not length_ok.any():
            return None
        # Bound 2: the multiset overlap of words, summed word by word from the postings.
        overlap = np.zeros(n, dtype=np.int32)
        for word, count in Counter(tokens).items():
            posting = self._postings.get(word)
            if posting is not None:
                ids, counts = posting[0].view(), posting[1].view()
                overlap[ids] += np.minimum(counts, count)
        bound = 2.0 * overlap / (lengths + m)
        candidates = np.flatnonzero(length_ok & (bound > threshold))
        for index in candidates[np.argsort(-bound[candidates], kind="stable")]:
            score = (
                2.0
                * _lcs_with_masks(self._masks[index], int(lengths[index]), tokens)
                / (int(lengths[index]) + m)
            )
            if score > threshold:
                return int(index), score
        return None


def _match_masks(tokens: list[str]) -> dict[str, int]:
    masks: dict[str, int] = {}
    for i, word in enumerate(tokens):
        masks[word] = masks.get(word, 0) | (1 << i)
    return masks


def _lcs_with_masks(masks: dict[str, int], m: int, b: list[str]) -> int:
    # Hyyro's bit-vector LCS: a zero bit in V marks a matched position of `a`; each word of `b` is one step.
    full = (1 << m) - 1
    v = full
    for word in b:
        match = masks.get(word)
        if match:
            u = v & match
            v = ((v + u) | (v - u)) & full
    return m - v.bit_count()


class _Growable:
    """A numpy array that grows by doubling, so appends are cheap and reads are zero-copy views."""

    def __init__(self, dtype: type) -> None:
        self._data: np.ndarray = np.zeros(16, dtype=dtype)
        self._size = 0

    def append(self, value: int) -> None:
        if self._size == len(self._data):
            self._data = np.concatenate([self._data, np.zeros_like(self._data)])
        self._data[self._size] = value
        self._size += 1

    def view(self) -> np.ndarray:
        return self._data[: self._size]
