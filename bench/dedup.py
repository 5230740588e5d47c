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

    .venv/bin/python bench/dedup.py [--n 10000] [--rouge-n 2000] [--batch-size 256]
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
    args = parser.parse_args()

    texts = questions(max(args.n, args.rouge_n), args.seed)
    print(
        f"texts: {len(texts)} ({'shared GSM8K + SVAMP' if SHARED.is_dir() else 'builtin:arith'}, with edits)"
    )
    embedding_benchmark(texts[: args.n], args.batch_size)
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
    overhead = dedup_s / embed_s - 1
    print(
        f"near_dup (embedding, cosine > {critic.threshold}) over {len(texts)} records: {dedup_s:.1f} s; "
        f"embedding alone {embed_s:.1f} s; dedup adds {overhead:+.1%} (target < 25%); dropped {dropped}"
    )
    print(
        json.dumps(
            {
                "embedding": {
                    "n": len(texts),
                    "dedup_s": round(dedup_s, 2),
                    "embed_s": round(embed_s, 2),
                    "overhead": round(overhead, 4),
                    "dropped": dropped,
                }
            }
        )
    )


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
