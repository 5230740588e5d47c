"""near_dup's cost, measured side by side in one run.

1. Embedding near-dup over N records (default 10,000): the critic's total time (it embeds, then
   compares in blocks against the kept set) against the time to embed the same texts alone.
   Target: dedup adds under 25% to embedding.
2. ROUGE-L near-dup over M records (default 2,000): the critic (length and word-overlap bounds, then
   a bit-parallel LCS) against a naive pairwise loop with Google's rouge_score, as Self-Instruct
   filtered (every new text scored against every kept one, dropped above 0.7). Both must keep the
   same records; the ratio of their times is printed.

Texts are GSM8K and SVAMP questions from ../shared/data (real near-duplicates are added by lightly
editing a share of them); without that folder, the built-in arithmetic task's questions.

    .venv/bin/python bench/dedup.py [--n 10000] [--rouge-n 2000] [--batch-size 256]  (0 skips a part)
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from synthdistill.critics import build_critic
from synthdistill.records import Record

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10_000, help="Records for the embedding benchmark.")
    parser.add_argument("--rouge-n", type=int, default=2_000, help="Records for the ROUGE-L benchmark.")
    parser.add_argument("--batch-size", type=int, default=256, help="Records per critic call (the filter's).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--compare-only", action="store_true", help="Time only the comparisons of N records (no model)."
    )
    args = parser.parse_args()

    if args.compare_only:
        seconds = _compare_only(0.9, args.n, args.batch_size)
        print(f"near_dup comparisons of {args.n} records, vectors given: {seconds:.2f} s")
        return
    texts = questions(max(args.n, args.rouge_n), args.seed)
    print(
        f"texts: {len(texts)} ({'shared GSM8K + SVAMP' if SHARED.is_dir() else 'builtin:arith'}, with edits)"
    )
    # Either part can be skipped with a size of 0, to run the two in separate processes.
    if args.n:
        embedding_benchmark(texts[: args.n], args.batch_size)
    if args.rouge_n:
        rouge_benchmark(texts[: args.rouge_n], args.batch_size)


def embedding_benchmark(texts: list[str], batch_size: int) -> None:
    """Embed alone, then the near_dup critic, on the same texts; both after one warm-up."""
    from synthdistill.embeddings import embed

    embed(texts[:64])  # load the model once, outside both timings
    started = time.perf_counter()
    for start in range(0, len(texts), batch_size):
        embed(texts[start : start + batch_size])
    embed_s = time.perf_counter() - started

    critic = build_critic({"near_dup": {"field": "input.question"}})
    records = [Record.from_input({"question": t}) for t in texts]
    started = time.perf_counter()
    dropped = 0
    for start in range(0, len(records), batch_size):
        dropped += sum(not v.passed for v in critic.score(records[start : start + batch_size]))
    dedup_s = time.perf_counter() - started
    compare_s = _compare_only(critic.threshold, len(texts), batch_size)
    overhead = dedup_s / embed_s - 1
    print(
        f"near_dup (embedding, cosine > {critic.threshold}) over {len(texts)} records: {dedup_s:.1f} s; "
        f"embedding alone {embed_s:.1f} s; dedup adds {overhead:+.1%} (target < 25%); dropped {dropped}; "
        f"comparisons alone (vectors given) {compare_s:.2f} s, {compare_s / embed_s:.1%} of embedding"
    )
    print(
        json.dumps(
            {
                "embedding": {
                    "n": len(texts),
                    "dedup_s": round(dedup_s, 2),
                    "embed_s": round(embed_s, 2),
                    "overhead": round(overhead, 4),
                    "compare_s": round(compare_s, 3),
                    "dropped": dropped,
                }
            }
        )
    )


def _compare_only(threshold: float, n: int, batch_size: int) -> float:
    """The critic's comparison work alone: embedding replaced by a lookup of random unit vectors.

    On a busy machine the two embedding passes above differ by more than the comparisons cost, so
    this isolates what dedup adds: blocked matrix products against the kept set, and the batch loop.
    """
    import numpy as np

    import synthdistill.embeddings as embeddings

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, 384)).astype(np.float32)
    copies = rng.choice(n, n // 10, replace=False)
    vectors[copies] = vectors[rng.choice(n, len(copies))] + 0.05 * rng.standard_normal((len(copies), 384))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    lookup = {f"t{i}": vectors[i] for i in range(n)}
    real_embed = embeddings.embed
    embeddings.embed = lambda texts, model="", batch_size=128: np.stack([lookup[t] for t in texts])
    try:
        critic = build_critic({"near_dup": {"field": "input.question", "threshold": threshold}})
        records = [Record.from_input({"question": f"t{i}"}) for i in range(n)]
        started = time.perf_counter()
        for start in range(0, n, batch_size):
            critic.score(records[start : start + batch_size])
        return time.perf_counter() - started
    finally:
        embeddings.embed = real_embed


def rouge_benchmark(texts: list[str], batch_size: int) -> None:
    """The critic's ROUGE-L dedup against Self-Instruct's pairwise loop with rouge_score."""
    from rouge_score import rouge_scorer

    critic = build_critic({"near_dup": {"method": "rouge_l", "field": "input.question"}})
    records = [Record.from_input({"question": t}) for t in texts]
    started = time.perf_counter()
    fast_kept = []
    for start in range(0, len(records), batch_size):
        batch = records[start : start + batch_size]
        fast_kept += [
            r.input["question"] for r, v in zip(batch, critic.score(batch), strict=True) if v.passed
        ]
    fast_s = time.perf_counter() - started

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    started = time.perf_counter()
    naive_kept: list[str] = []
    for text in texts:
        scores = [scorer.score(kept, text)["rougeL"].fmeasure for kept in naive_kept]
        if not scores or max(scores) <= 0.7:
            naive_kept.append(text)
    naive_s = time.perf_counter() - started
    same = fast_kept == naive_kept
    print(
        f"near_dup (ROUGE-L > 0.7) over {len(texts)} records: {fast_s:.2f} s; naive pairwise rouge_score "
        f"{naive_s:.1f} s; {naive_s / fast_s:.0f}x faster; kept {len(fast_kept)} (naive {len(naive_kept)}, "
        f"{'same records' if same else 'DIFFERENT records'})"
    )
    print(
        json.dumps(
            {
                "rouge_l": {
                    "n": len(texts),
                    "fast_s": round(fast_s, 3),
                    "naive_s": round(naive_s, 2),
                    "speedup": round(naive_s / fast_s, 1),
                    "same_kept": same,
                }
            }
        )
    )


def questions(n: int, seed: int) -> list[str]:
    """n questions, about 10% of them light edits of others (near-duplicates), shuffled by `seed`."""
    rng = random.Random(seed)
    base = _shared_questions() or _builtin_questions(n)
    rng.shuffle(base)
    originals = base[: int(n * 0.9)]
    edits = [_edit(rng.choice(originals), rng) for _ in range(n - len(originals))]
    texts = originals + edits
    rng.shuffle(texts)
    return texts[:n]


def _shared_questions() -> list[str]:
    if not SHARED.is_dir():
        return []
    lines = (SHARED / "gsm8k" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [json.loads(line)["question"] for line in lines if line.strip()]
    svamp = json.loads((SHARED / "svamp" / "SVAMP.json").read_text(encoding="utf-8"))
    texts += [f"{item['Body']} {item['Question']}" for item in svamp]
    return texts


def _builtin_questions(n: int) -> list[str]:
    from synthdistill.sources.builtin import load_builtin

    return [row["question"] for row in load_builtin("arith", {"difficulty": 2}, 0, n, Path("."))]


def _edit(text: str, rng: random.Random) -> str:
    """A near-duplicate: one word dropped and one number changed, as a paraphrasing teacher would."""
    words = text.split()
    if len(words) > 4:
        del words[rng.randrange(len(words))]
    numbers = [i for i, w in enumerate(words) if w.isdigit()]
    if numbers:
        i = rng.choice(numbers)
        words[i] = str(int(words[i]) + rng.randint(1, 9))
    return " ".join(words)


if __name__ == "__main__":
    main()
