"""Tokens per second of the transformers backend one sequence at a time against batched, side by side.

The same prompts (arithmetic word problems after a short few-shot instruction) go through two backends on
the same checkpoint, one with batch_size 1 and one with the default batch size (and that batch once more
as one generate call, to show what dropping finished rows between segments gains), greedily, in interleaved
rounds so that a machine whose load drifts slows them alike. Generated tokens are counted up to EOS, as
the backend reports them: a batch pays for its longest row, and that cost is part of the figure.

    python bench/local_generation.py [--prompts 64] [--max-new-tokens 64] [--min-new-tokens 0]
    python bench/local_generation.py --temperature 0.8 --max-new-tokens 192   # as the cot pipeline samples
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from synthdistill.config import TeacherConfig
from synthdistill.teachers.base import Request, Response
from synthdistill.teachers.local import TransformersBackend


def main() -> None:
    """Parse arguments, run both modes and print their tokens/s and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64, help="How many prompts each mode generates for.")
    parser.add_argument(
        "--max-new-tokens", type=int, default=64, help="Most new tokens a completion may have."
    )
    parser.add_argument(
        "--batch-size", type=int, default=TeacherConfig().batch_size, help="Batched mode's size."
    )
    parser.add_argument(
        "--min-new-tokens",
        type=int,
        default=0,
        help="Suppress EOS until this many tokens; equal to --max-new-tokens, no row ends early.",
    )
    parser.add_argument("--temperature", type=float, default=0.0, help="0 is greedy; above, seeded "
                        "sampling, whose answers vary in length as a teacher's samples do.")  # fmt: skip
    parser.add_argument("--segment-tokens", type=int, default=None, help="Batched mode's segment_tokens "
                        "(the backend's default when absent).")  # fmt: skip
    parser.add_argument("--model", default="smollm2-135m", help="Alias, local folder or cached hub id.")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps.")
    args = parser.parse_args()
    asyncio.run(_bench(args))


async def _bench(args: argparse.Namespace) -> None:
    requests = [
        Request(messages=_messages(q), max_tokens=args.max_new_tokens, temperature=args.temperature, seed=0)
        for q in _questions(args.prompts)
    ]
    # "one-call" is the default batch run as one generate over the whole budget, without dropping the
    # rows that ended between segments: what the segments gain.
    modes = {"batch-1": (1, {}), "one-call": (args.batch_size, {"segment_tokens": 0}),
             "batched": (args.batch_size, {} if args.segment_tokens is None else
                         {"segment_tokens": args.segment_tokens})}  # fmt: skip
    options = {"min_new_tokens": args.min_new_tokens} if args.min_new_tokens else {}
    backends = {
        mode: TransformersBackend(
            TeacherConfig(model=args.model, batch_size=size, options={**options, **extra}), device=args.device
        )
        for mode, (size, extra) in modes.items()
    }
    for mode, backend in backends.items():
        started = time.perf_counter()
        # The first call loads the model (and converts an embedded one once); it is not timed below.
        warm_up = Request(messages=_messages("What is 1 + 1?"), max_tokens=max(2, args.min_new_tokens))
        await backend.complete(warm_up)
        warm = time.perf_counter() - started
        print(f"{mode}: load and warm-up {warm:.1f} s (load {backend.stats['load_s']:.1f} s, not timed)")
        backend.stats.update(
            generate_calls=0, rows=0, completion_tokens=0, token_slots=0, prefill_tokens_saved=0
        )

    seconds = dict.fromkeys(modes, 0.0)
    responses: dict[str, list[Response]] = {mode: [] for mode in modes}
    # Interleaved rounds of one full batch each: both modes see the same slice of the machine's load.
    for start in range(0, len(requests), args.batch_size):
        chunk = requests[start : start + args.batch_size]
        for mode, backend in backends.items():
            started = time.perf_counter()
            responses[mode] += await asyncio.gather(*(backend.complete(request) for request in chunk))
            seconds[mode] += time.perf_counter() - started

    rates = {}
    for mode, backend in backends.items():
        tokens = int(backend.stats["completion_tokens"])
        rates[mode] = tokens / seconds[mode]
        finished = sum(r.completions[0].finish_reason == "stop" for r in responses[mode])
        calls, saved = int(backend.stats["generate_calls"]), int(backend.stats["prefill_tokens_saved"])
        # A batch computes every row it holds at every step; slots after a row's end are waste.
        used = tokens / backend.stats["token_slots"]
        print(
            f"{mode}: {tokens} tokens in {seconds[mode]:.1f} s = {rates[mode]:.1f} tokens/s "
            f"({calls} generate calls, {finished}/{len(requests)} ended on EOS, {saved} prompt tokens "
            f"shared, {used:.0%} of computed token slots used)"
        )
    same = sum(
        a.completions[0].text == b.completions[0].text
        for a, b in zip(responses["batch-1"], responses["batched"], strict=True)
    )
    if not args.temperature:
        print(f"greedy texts identical in both modes: {same}/{len(requests)}")
    print(f"segments: batched {rates['batched'] / rates['one-call']:.2f}x one-call")
    print(f"batched {rates['batched'] / rates['batch-1']:.1f}x batch-1")
    for backend in backends.values():
        await backend.aclose()


def _messages(question: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": _INSTRUCTION},
        {"role": "user", "content": "Tom has 3 apples and buys 4 more. How many apples does he have?"},
        {"role": "assistant", "content": "Tom starts with 3 and adds 4: 3 + 4 = 7. The answer is 7."},
        {"role": "user", "content": "A box holds 6 pens. How many pens are in 5 boxes?"},
        {
            "role": "assistant",
            "content": "Each box has 6 pens, and 5 boxes have 5 * 6 = 30. The answer is 30.",
        },
        {"role": "user", "content": question},
    ]


def _questions(count: int) -> list[str]:
    rng = random.Random(0)
    names = ["Ana", "Ben", "Chloe", "Dev", "Eli", "Fatima", "Gus", "Hana"]
    items = ["marbles", "stickers", "cookies", "books", "coins", "shells"]
    questions = []
    for _ in range(count):
        name, item = rng.choice(names), rng.choice(items)
        a, b = rng.randint(2, 40), rng.randint(2, 12)
        kind = rng.choice(["add", "sub", "mul"])
        if kind == "add":
            questions.append(f"{name} has {a} {item} and finds {b} more. How many {item} does {name} have?")
        elif kind == "sub":
            questions.append(f"{name} has {a + b} {item} and gives away {b}. How many {item} are left?")
        else:
            questions.append(f"{name} fills {b} bags with {a} {item} each. How many {item} is that in all?")
    return questions


_INSTRUCTION = "Solve the word problem in one or two short sentences, then write 'The answer is N.'"

if __name__ == "__main__":
    main()
