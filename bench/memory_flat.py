"""Peak memory of `synthdistill run` as the run grows: records stream, so 10x the requests is not 10x RSS.

A generate-and-filter pipeline reads N distinct questions from a JSONL file and sends each to the scripted
server (in a process of its own, no latency), for N = 10,000 and N = 100,000 by default. Each run is a
fresh `synthdistill run` process measured by /usr/bin/time (peak RSS) with a fresh cache, so the
figures include the call cache, the stage files and the final dataset. It prints the peak RSS of each
size and their ratio; the target is under 1 GiB at 100,000 requests.

    python bench/memory_flat.py [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PIPELINE = """
name: memory
seed: 0
teacher: {{backend: openai, model: scripted, api_base: "{url}", max_concurrency: 64}}
data:
  source: {data}
  fields: {{question: question, answer: answer}}
  split: {{train: {size}, test: 0}}
stages:
  - generate: {{template: plain.j2, n: 1, temperature: 0.7, max_tokens: 64}}
  - filter: {{critics: [{{length: {{max_words: 100}}}}]}}
"""


def main() -> None:
    """Run each size in a fresh process and print peak RSS per size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="Requests per run.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="synthdistill-memory-") as scratch:
        root = Path(scratch)
        data = root / "questions.jsonl"
        with data.open("w") as handle:
            for i in range(max(args.sizes)):
                handle.write(json.dumps({"question": f"What is {i} plus 7?", "answer": str(i + 7)}) + "\n")
        (root / "prompts").mkdir()
        (root / "prompts" / "plain.j2").write_text("<|user|>\n{{ question }}\n")
        server = subprocess.Popen(
            [sys.executable, "-m", "synthdistill.testing.scripted_server", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            url = server.stdout.readline().strip()
            rows = [_run(root, url, data, size) for size in args.sizes]
        finally:
            server.terminate()
            server.wait()
    print(f"\n{'requests':>10} {'wall s':>8} {'req/s':>8} {'peak RSS MiB':>13}")
    for size, seconds, rss in rows:
        print(f"{size:>10} {seconds:>8.1f} {size / seconds:>8.0f} {rss / 1024:>13.0f}")
    (small, _, small_rss), (large, _, large_rss) = rows[0], rows[-1]
    print(
        f"\n{large / small:.0f}x the requests took {large_rss / small_rss:.2f}x the peak RSS; "
        f"at {large:,} requests: {large_rss / 1024:.0f} MiB (target: under 1024 MiB)"
    )


def _run(root: Path, url: str, data: Path, size: int) -> tuple[int, float, int]:
    pipeline = root / f"memory-{size}.yaml"
    pipeline.write_text(PIPELINE.format(url=url, data=data, size=size))
    env = {**os.environ, "SYNTHDISTILL_HOME": str(root / f"home-{size}")}
    started = time.monotonic()
    result = subprocess.run(
        [
            "/usr/bin/time",
            "-v",
            sys.executable,
            "-m",
            "synthdistill",
            "run",
            str(pipeline),
            "--run-name",
            f"m{size}",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"the run of {size} failed:\n{result.stderr[-3000:]}")
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
    assert match, result.stderr[-2000:]
    print(f"{size} requests: {seconds:.1f} s, peak RSS {int(match.group(1)) / 1024:.0f} MiB", flush=True)
    return size, seconds, int(match.group(1))


if __name__ == "__main__":
    main()
