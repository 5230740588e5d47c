"""The review page at scale: a synthetic run of 200,000 records, timed through the HTTP API.

Writes a run folder (generate -> self_consistency -> filter, the last two with --records records each)
with the project's own Record model and RecordWriter, then measures, in one run:
  - the one-time index build (all three stage files), on its own;
  - opening the run again (index cached) up to the first page served over HTTP;
  - a filtered page (a critic's fails, an agreement range, a word search, sorted by a score), a deep
    page, the side-by-side view of one question's samples (/api/group), and the statistics view;
  - against loading the last stage file whole, which is what a viewer that ships everything to the
    browser must do before it shows anything.

    python bench/review_scale.py                 # 200,000 records in a temporary folder
    python bench/review_scale.py --records 20000 --dir /tmp/review-bench
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from synthdistill.records import Provenance, Record, Sample, Verdict
from synthdistill.review.index import INDEX_FILE
from synthdistill.review.server import ReviewServer
from synthdistill.runs.folder import Manifest, RecordWriter, RunFolder, StageManifest

WORDS = ["first", "then", "adds", "takes", "away", "each", "group", "total", "more", "twice", "apples"]
NAMES = ["Emma", "Liam", "Sofia", "Noah", "Mia", "Jonas"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=200_000, help="Records in the last two stages.")
    parser.add_argument(
        "--dir", type=Path, default=None, help="Where to write the run (default: a temp dir)."
    )
    parser.add_argument("--repeat", type=int, default=5, help="Timed requests per measurement.")
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="review-bench-"))
    run_dir = base / "outputs" / "bench"
    try:
        started = time.perf_counter()
        if not (run_dir / "manifest.json").exists():
            write_run(run_dir, args.records)
        print(
            f"run folder {run_dir}: written in {time.perf_counter() - started:.1f} s "
            f"({sum(p.stat().st_size for p in run_dir.glob('*/records.jsonl')) / 1e6:.0f} MB of stage files)"
        )
        measure(run_dir, args.repeat)
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)


def write_run(run_dir: Path, n: int) -> None:
    """generate (n/4 problems, 4 samples each) -> self_consistency (n) -> filter (n), with a manifest."""
    rng = random.Random(0)
    folder = RunFolder(run_dir)
    parents = []
    with RecordWriter(folder.stage_dir("01-generate") / "records.jsonl") as writer:
        batch = []
        for i in range(n // 4):
            a, b = rng.randint(2, 99), rng.randint(2, 99)
            question = f"{rng.choice(NAMES)} has {a} apples and gets {b} more in round {i}. How many now?"
            record = Record.from_input({"question": question, "answer": str(a + b)})
            samples = [_sample(rng, a + b + rng.choice([0, 0, 1, -1])) for _ in range(4)]
            prov = Provenance(stage="generate", teacher="openai", model="bench", template="cot_rationale.j2")
            record = record.model_copy(update={"samples": samples, "provenance": [prov]})
            parents.append(record)
            batch.append(record)
            if len(batch) == 1000:
                writer.write(batch)
                batch = []
        writer.write(batch)
    children = []
    with RecordWriter(folder.stage_dir("02-self_consistency") / "records.jsonl") as writer:
        for parent in parents:
            answers = [s.fields["answer"] for s in parent.samples]
            batch = []
            for sample in parent.samples:
                child = parent.child(
                    samples=[sample],
                    rationale=sample.fields["rationale"],
                    answer=sample.fields["answer"],
                    agreement=answers.count(sample.fields["answer"]) / len(answers),
                )
                batch.append(child)
            children.extend(batch)
            writer.write(batch)
    kept = 0
    with RecordWriter(folder.stage_dir("03-filter") / "records.jsonl") as writer:
        for start in range(0, len(children), 1000):
            batch = []
            for child in children[start : start + 1000]:
                words = len((child.rationale or "").split())
                verdicts = {
                    "answer_match": Verdict(
                        score=float(child.answer == child.gold), passed=child.answer == child.gold
                    ),
                    "length": Verdict(score=float(words), passed=words <= 40, reason=f"{words} words"),
                }
                out = child.model_copy(update={"verdicts": verdicts, "source_id": child.id})
                if not all(v.passed for v in verdicts.values()):
                    failed = next(name for name, v in verdicts.items() if not v.passed)
                    out = out.model_copy(update={"kept": False, "dropped_by": failed})
                kept += out.kept
                batch.append(out)
            writer.write(batch)
    stages = [
        StageManifest(
            name="generate",
            folder="01-generate",
            status="done",
            records_in=len(parents),
            records_out=len(parents),
        ),
        StageManifest(
            name="self_consistency",
            folder="02-self_consistency",
            status="done",
            records_in=len(parents),
            records_out=len(children),
        ),
        StageManifest(
            name="filter", folder="03-filter", status="done", records_in=len(children), records_out=kept
        ),
    ]
    folder.write_manifest(Manifest(name="bench", pipeline="bench.yaml", status="done", stages=stages))


def measure(run_dir: Path, repeat: int) -> None:
    (run_dir / INDEX_FILE).unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        (run_dir / f"{INDEX_FILE}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    server = ReviewServer(run_dir, port=0)
    build = time.perf_counter() - started
    server.stop()
    records = server.build.records_indexed
    print(
        f"index build (one time, {records:,} records in 3 stage files): {build:.2f} s "
        f"({records / build:,.0f} records/s), index {(run_dir / INDEX_FILE).stat().st_size / 1e6:.0f} MB"
    )

    started = time.perf_counter()
    with ReviewServer(run_dir, port=0) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        page = client.get("/api/records", params={"stage": "03-filter", "limit": 50}).json()
        first_page = time.perf_counter() - started
        total = page["total"]
        print(
            f"open the run (index cached) to the first page of {total:,} records over HTTP: "
            f"{first_page:.3f} s"
        )
        timings = {
            "next page": {"stage": "03-filter", "offset": 50},
            "filtered page (critic fails, agreement 0.5-1, word search, sorted by score)": {
                "stage": "03-filter",
                "critic": "length",
                "verdict": "fail",
                "min_agreement": 0.5,
                "q": "apples twice",
                "sort": "score:length",
                "order": "desc",
            },
            "full-text search over every stage": {"q": "Sofia round 1234"},
            "dropped records sorted by agreement": {
                "stage": "03-filter",
                "kept": "false",
                "sort": "agreement",
            },
            "deep page (offset 190,000)": {"stage": "03-filter", "offset": min(190_000, max(0, total - 50))},
        }
        results = {}
        for label, params in timings.items():
            results[label] = _time(client, "/api/records", params, repeat)
        middle = {"stage": "03-filter", "offset": total // 2, "limit": 1}
        record = client.get("/api/records", params=middle).json()["records"][0]["record"]["id"]
        groups = {
            "side-by-side view of one question's samples (03-filter)": {
                "record": record,
                "stage": "03-filter",
            },
            "side-by-side view, the stage found by the server": {"record": record},
        }
        for label, params in groups.items():
            results[label] = _time(client, "/api/group", params, repeat)
        results["statistics view"] = _time(client, "/api/stats", {"stage": "03-filter"}, repeat)
    for label, (first, median, matched) in results.items():
        extra = f" ({matched:,} match)" if matched is not None else ""
        print(f"{label}: first {first * 1000:.0f} ms, then median {median * 1000:.0f} ms{extra}")

    started = time.perf_counter()
    with (run_dir / "03-filter" / "records.jsonl").open(encoding="utf-8") as handle:
        loaded = [json.loads(line) for line in handle]
    whole = time.perf_counter() - started
    print(
        f"baseline: loading the last stage file whole ({len(loaded):,} records, before any rendering): "
        f"{whole:.2f} s"
    )
    filtered = results[next(label for label in results if label.startswith("filtered"))][0]
    print(
        f"ratio: first page {whole / first_page:.0f}x sooner than loading everything; "
        f"a first filtered page {whole / filtered:.0f}x"
    )


def _sample(rng: random.Random, answer: int) -> Sample:
    steps = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 60)))
    text = f"{steps.capitalize()}.\nThe answer is {answer}."
    return Sample(
        text=text,
        fields={"rationale": f"{steps.capitalize()}.", "answer": str(answer)},
        prompt_tokens=120,
        completion_tokens=len(text.split()),
        finish_reason="stop",
    )


def _time(client: httpx.Client, path: str, params: dict, repeat: int) -> tuple[float, float, int | None]:
    """Seconds of the first request (the filter's count is not cached yet), the median of the rest."""
    seconds = []
    body: dict = {}
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path, params=params)
        seconds.append(time.perf_counter() - started)
        response.raise_for_status()
        body = response.json()
    return seconds[0], statistics.median(seconds[1:] or seconds), body.get("total")


if __name__ == "__main__":
    main()
