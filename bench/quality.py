"""The distillation-quality benchmark: does synthdistill's data make a better student?

The same student, under the same budget (training records and optimizer steps), five ways:
  1. base          no training
  2. label-only    SFT on the gold answers alone ("The answer is N.")
  3. unfiltered    SFT on every parsed teacher rationale, right or wrong
  4. filtered      SFT on rationales kept by self-consistency (majority) and critics (answer_match, length)
  5. step-by-step  row 4's records, trained as two tasks (label and rationale, weight 0.5), asked for the
                   label at test time as in the paper (no rationale generated), so its peer is row 2
  5b. sbs-rationale the same training, asked for its rationale at test time (its peer is row 4)
and, with `--adversarial`, two more rows at equal teacher budget (issue 8):
  6. adversarial   row 4, then Lion rounds: new problems modelled on those the student gets wrong
  7. random-growth row 4, then the same rounds with seeds drawn at random (the control)
each also scored on a hard split (builtin:arith at difficulty 2), with rows 1 and 4 for reference;
on `builtin:arith` (and GSM8K-format data from `--gsm8k FILE`), for several seeds (the seed changes the
split, the sampling and the training). `--datasets cqa,esnli` adds CommonsenseQA and e-SNLI from
../shared/data, PaLM-540B's recorded rationales as the teacher's pool, and on cqa the answer line's form
as rows of its own (bench/quality_tasks.py). Every row runs through the product's own pipeline API;
generation is paid once per seed and answered from the call cache afterwards. It prints one table of
accuracy with 95% bootstrap intervals (pooled over seeds), training records and seconds, then paired
gains for the research's claims: 4 beats 3, 4 beats 1, rationales (3, 4) beat labels (2) at equal
data, step-by-step (5) beats labels, and on cqa each answer-line form against the others.

    python bench/quality.py --quick                      # smoke size, minutes
    python bench/quality.py --test 300 --seeds 3         # the documented full size (hours on a 2-core CPU)
    python bench/quality.py --gsm8k ../shared/data/gsm8k/train.jsonl --test 300 --seeds 3
    python bench/quality.py --gsm8k ../shared/data/gsm8k/train.jsonl --no-arith --seeds 1   # GSM8K alone
    python bench/quality.py --adversarial --rounds 2 --test 300 --seeds 3   # rows 6 and 7 too
    python bench/quality.py --datasets cqa --quick                           # a real task, smoke size
    python bench/quality.py --datasets cqa,esnli --test 300 --seeds 3        # both tasks, full size

Each finished (dataset, seed, row) writes its scores to `--scores DIR` (default <out>/scores); a re-run
reads them back and skips that row, so a run of several hours can be spread over several sittings, or
its scores kept (in git, say) while the run folders are thrown away. Each row also keeps a fingerprint
of its seed's pool of filtered rationales: a pool generated again in a later sitting that comes out
different sends that seed's earlier rows through again, so one seed's rows never mix pools.

The default teacher is the embedded SmolLM2-135M (self-distillation in the STaR manner); `--teacher-*`
options point it at a stronger model on an OpenAI-compatible server.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import quality_tasks
import yaml
from quality_tasks import TASKS

ROWS = ("base", "label-only", "unfiltered", "filtered", "step-by-step", "sbs-rationale")
GROWTH_ROWS = ("adversarial", "random-growth")
HARD_ROWS = ("base", "filtered", *GROWTH_ROWS)
"""Rows also scored on the hard split when --adversarial is given."""
NUMBERS = (
    {"sbs-rationale": "5b", "adversarial": "6", "random-growth": "7"}
    | {row: str(number) for number, row in enumerate(ROWS[:5], 1)}
    | quality_tasks.NUMBERS
)
"""The rows' numbers in the table, as the claims name them."""
RECIPES = {"step-by-step": 2, "sbs-rationale": 2}
"""Each row's recipe version (1 where absent), kept with its scores: bump it when the product changes what
the row trains or asks, and kept scores of the older recipe run again. 2: step-by-step's task cue moved
from a tag at the start of the prompt ("[rationale] ") to an instruction at its end."""
GSM8K_FIELDS = {"question": "question", "answer": {"from": "answer", "regex": r"####\s*([-0-9.,]+)"}}
# Rough costs on the 2-core development CPU (LAB.md, README): batched sampling ~90 tokens/s, a LoRA step
# at batch 8 ~9 s, greedy evaluation ~60 tokens/s; used only to print an estimate before the run.
SAMPLE_TOKENS_PER_S, TRAIN_STEP_S, EVAL_TOKENS_PER_S = 90.0, 9.0, 60.0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table; returns the exit code."""
    args = _parse(argv)
    names = [*args.datasets, *(["gsm8k"] if args.gsm8k else [])]
    estimate = sum(_estimate(args, name) for name in names)
    print(
        f"# {len(names)} dataset(s) x {args.seeds} seed(s): train {args.train}, test {args.test}, "
        f"n {args.n}, steps {args.steps or 'from the data'}; estimated {estimate / 60:.0f} min on a 2-core "
        "CPU",
        file=sys.stderr,
    )
    if args.estimate_only:
        return 0
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in names:
        results[name] = _benchmark(name, _data(name, args, out), args, out)
        _print_table(name, results[name], args)
    (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"# results: {out / 'results.json'}", file=sys.stderr)
    return 0


def _data(name: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """The `data` block (without the split) of dataset `name`'s pipelines."""
    if name == "arith":
        return {"source": "builtin:arith", "options": {"difficulty": 1}}
    if name == "gsm8k":
        return {"source": str(Path(args.gsm8k).resolve()), "fields": GSM8K_FIELDS}
    return quality_tasks.task_data(name, Path(args.shared_data), out)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Smoke size: train 12, test 12, 1 seed, n 2.")
    parser.add_argument("--train", type=int, default=200, help="Training questions per seed.")
    parser.add_argument("--test", type=int, default=300, help="Held-out questions per seed.")
    parser.add_argument("--seeds", type=int, default=3, help="Seeds (0..N-1).")
    parser.add_argument("--n", type=int, default=4, help="Teacher samples per question.")
    parser.add_argument("--examples", type=int, default=None, help="Training records per row (default: "
                        "what the filter keeps, the smallest pool).")  # fmt: skip
    parser.add_argument("--steps", type=int, default=None, help="Optimizer steps per row (default 2 epochs).")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--gen-tokens", type=int, default=192, help="Most tokens of a teacher rationale.")
    parser.add_argument("--eval-tokens", type=int, default=128, help="Most tokens of an evaluated answer.")
    parser.add_argument("--datasets", type=lambda text: text.split(","), default=["arith"],
                        help="Comma-separated, of arith (builtin:arith), cqa and esnli (../shared/data, "
                        "PaLM-540B's rationales as the pool).")  # fmt: skip
    parser.add_argument("--shared-data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"),
                        help="The folder holding cqa/train.jsonl and esnli/valid.jsonl.")  # fmt: skip
    parser.add_argument("--gsm8k", help="A GSM8K-format JSONL file (question, answer with '#### N').")
    parser.add_argument("--no-arith", action="store_true", help="Leave out builtin:arith (with --gsm8k).")
    parser.add_argument("--teacher-backend", default="transformers")
    parser.add_argument("--teacher-model", default="smollm2-135m")
    parser.add_argument("--teacher-api-base", default=None)
    parser.add_argument("--student", default="smollm2-135m")
    parser.add_argument("--out", default="outputs/bench-quality", help="Folder for the runs and results.")
    parser.add_argument("--estimate-only", action="store_true", help="Print the time estimate and stop.")
    parser.add_argument("--adversarial", action="store_true", help="Add rows 6 and 7 (Lion rounds).")
    parser.add_argument("--rows", type=lambda text: text.split(","), default=None,
                        help="Run only these rows (comma-separated; base is always scored).")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2, help="Adversarial rounds (rows 6 and 7).")
    parser.add_argument("--per-round", type=int, default=60, help="New problems asked per round.")
    parser.add_argument("--probe", type=int, default=60, help="Pool problems the student answers per round.")
    parser.add_argument("--hard-test", type=int, default=None, help="Hard-split items (default: --test).")
    parser.add_argument("--scores", default=None, help="Folder of finished rows' scores (default "
                        "<out>/scores); a row found there is not run again.")  # fmt: skip
    args = parser.parse_args(argv)
    unknown = [name for name in args.datasets if name not in ("arith", *TASKS)]
    if unknown:
        parser.error(f"--datasets: unknown {', '.join(unknown)}; choose from arith, {', '.join(TASKS)}")
    if args.no_arith:
        args.datasets = [name for name in args.datasets if name != "arith"]
    if not args.datasets and not args.gsm8k:
        parser.error("no dataset left; give --datasets cqa,esnli or --gsm8k FILE")
    if args.quick:
        args.train, args.test, args.seeds, args.n = 12, 12, 1, 2
        args.batch_size, args.gen_tokens, args.eval_tokens = 4, 128, 64
        args.steps = args.steps or 3
        args.per_round, args.probe = 8, 8
    args.hard_test = args.hard_test or args.test
    return args


def _estimate(args: argparse.Namespace, name: str) -> float:
    if name in TASKS:
        return quality_tasks.estimate(name, args, TRAIN_STEP_S, EVAL_TOKENS_PER_S)
    sampling = args.train * args.n * args.gen_tokens * 0.6 / SAMPLE_TOKENS_PER_S
    steps = args.steps or math.ceil(2 * args.train * 0.3 / args.batch_size)
    trained = len(ROWS) - 1  # every row but the base trains; each is scored, and the base once
    training = trained * steps * TRAIN_STEP_S * args.batch_size / 8
    evaluation = len(ROWS) * args.test * args.eval_tokens * 0.6 / EVAL_TOKENS_PER_S
    return args.seeds * (sampling + training + evaluation + trained * 20)  # + model loads and saves


def _benchmark(name: str, data: dict[str, Any], args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from synthdistill.stages.evaluate.stats import bootstrap_ci, paired_bootstrap

    rows = quality_tasks.ROWS[name] if name in TASKS else ROWS + (GROWTH_ROWS if args.adversarial else ())
    if args.rows:
        rows = ("base", *(row for row in rows[1:] if row in args.rows))
    per_row: dict[str, dict[str, Any]] = {row: {"scores": [], "records": [], "seconds": 0.0} for row in rows}
    hard_scores: dict[str, list[float]] = {row: [] for row in HARD_ROWS}
    scores_dir = Path(args.scores).resolve() if args.scores else out / "scores"
    for seed in range(args.seeds):
        done = {row: _load_row(scores_dir, name, seed, row, args) for row in rows[1:]}
        if all(done.values()):
            print(f"# seed {seed}: every row's scores are in {scores_dir}", file=sys.stderr)
        else:
            done = _run_seed(name, data, seed, rows, done, args, out, scores_dir)
        base_done = False
        for row, result in done.items():
            if result is None:
                continue
            per_row[row]["scores"] += result["scores"]
            per_row[row]["records"].append(result["records"])
            per_row[row]["seconds"] += result["seconds"]
            if row in HARD_ROWS and result.get("hard"):
                hard_scores[row] += result["hard"]
            # Every row's evaluate scores the base too (from the call cache after the first): count it once.
            if not base_done:
                per_row["base"]["scores"] += result["base"]
                hard_scores["base"] += result.get("hard_base", [])
                base_done = True
    table = {}
    for row, values in per_row.items():
        scores = values["scores"]
        accuracy = sum(scores) / len(scores) if scores else 0.0
        table[row] = {
            "accuracy": round(accuracy, 4),
            "ci": list(bootstrap_ci(scores, seed=0)),
            "items": len(scores),
            "records": round(sum(values["records"]) / len(values["records"]), 1) if values["records"] else 0,
            "seconds": round(values["seconds"], 1),
        }
    claims = {}
    for better, worse, claim in (
        ("filtered", "unfiltered", "4 beats 3 (filtering helps)"),
        ("filtered", "base", "4 beats 1 (distillation helps)"),
        ("unfiltered", "label-only", "3 beats 2 (rationales beat labels at equal data)"),
        ("filtered", "label-only", "4 beats 2 (rationales beat labels at equal data)"),
        ("step-by-step", "label-only", "5 beats 2 (the paper's claim: two tasks beat labels alone)"),
        ("step-by-step", "filtered", "5 beats 4 (step-by-step helps)"),
        ("sbs-rationale", "filtered", "5b beats 4 (two-task training helps a student that reasons)"),
        ("adversarial", "random-growth", "6 beats 7 (adversarial rounds beat random growth)"),
        ("adversarial", "filtered", "6 beats 4 (the rounds add to the first training)"),
        ("hard:adversarial", "hard:random-growth", "6 beats 7 on the hard split"),
        ("hard:adversarial", "hard:filtered", "6 beats 4 on the hard split"),
        *quality_tasks.CLAIMS,
    ):
        a, b = (
            hard_scores.get(key.removeprefix("hard:"), [])
            if key.startswith("hard:")
            else per_row.get(key, {}).get("scores", [])
            for key in (better, worse)
        )
        if a and len(a) == len(b):
            gain = paired_bootstrap(a, b, seed=0)
            verdict = "holds" if gain["ci"][0] > 0 else "not shown" if gain["diff"] > 0 else "does not hold"
            claims[claim] = {**gain, "verdict": verdict}
    hard = {
        row: {"accuracy": round(sum(v) / len(v), 4), "ci": list(bootstrap_ci(v, seed=0)), "items": len(v)}
        for row, v in hard_scores.items()
        if v
    }
    return {"rows": table, "hard": hard, "claims": claims}


def _run_seed(
    name: str,
    data: dict[str, Any],
    seed: int,
    rows: tuple[str, ...],
    done: dict[str, dict[str, Any] | None],
    args: argparse.Namespace,
    out: Path,
    scores_dir: Path,
) -> dict[str, dict[str, Any] | None]:
    """Run one seed's missing rows (the pool first), saving each row's scores as it finishes."""
    pool = _run(out, f"{name}-s{seed}-pool", _pipeline(args, data, seed, "pool", name=name))
    pool_hash = _pool_hash(out / "runs" / f"{name}-s{seed}-pool")
    for row, result in done.items():
        # A seed's rows must all train on one pool; one made again in a later sitting may differ.
        if result is not None and result.get("pool", pool_hash) != pool_hash:
            print(f"# seed {seed}: the pool differs from the one {row} was trained on; running it again",
                  file=sys.stderr)  # fmt: skip
            done[row] = None
    kept = pool["stages"][-1]["records_out"]
    examples = min(args.examples or kept, kept) if kept else 0
    if examples == 0:
        print(f"# seed {seed}: the filter kept no rationale; skipping this seed", file=sys.stderr)
        return done
    steps = args.steps or max(1, math.ceil(2 * examples / args.batch_size))
    print(f"# seed {seed}: {kept} filtered rationales; every row trains on {examples} "
          f"records for {steps} steps", file=sys.stderr)  # fmt: skip
    hard_file = _hard_split(out, name, seed, args) if args.adversarial and name == "arith" else None
    first = True
    for row in rows[1:]:
        if done[row] is not None:
            first = False
            continue
        started = time.monotonic()
        # A task's sbs-rationale is a second evaluate of the step-by-step run (skipped when that ran).
        run_name = f"{name}-s{seed}-{quality_tasks.run_row(name, row)}"
        pipeline = _pipeline(args, data, seed, quality_tasks.run_row(name, row), examples, steps, name=name)
        manifest = _run(out, run_name, pipeline)
        seconds = time.monotonic() - started
        folder = out / "runs" / run_name
        train = [s for s in manifest["stages"] if s["name"] == "train"][-1]
        grown = next((s for s in manifest["stages"] if s["name"] == "adversarial"), None)
        result: dict[str, Any] = {
            "scores": _scores(folder, "student", quality_tasks.evaluation_of(name, row)),
            "base": _scores(folder, "base"),
            "records": grown["details"]["pool"] if grown else train["details"].get("examples", 0),
            "seconds": round(seconds + (pool["seconds"] if row != "label-only" else 0.0), 1),
            "pool": pool_hash,
            "recipe": RECIPES.get(row, 1),
        }
        if hard_file is not None and first:
            result["hard_base"] = _hard_scores(folder, args.student, hard_file, args, label="base")
        if hard_file is not None and row in HARD_ROWS:
            # The run's paths are relative to the benchmark folder, where the pipeline ran.
            student = str(out / manifest["artifacts"]["student_model"])
            result["hard"] = _hard_scores(folder, student, hard_file, args)
        _save_row(scores_dir, name, seed, row, args, result)
        done[row] = result
        first = False
    return done


def _pool_hash(folder: Path) -> str:
    """A fingerprint of the records a pool run kept (question, rationale, answer), to tell pools apart."""
    path = sorted(folder.glob("*-filter/records.jsonl"))[-1]
    kept = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if record.get("kept"):
                kept.append(json.dumps([record["input"].get("question"), record.get("rationale"),
                                        record.get("answer")]))  # fmt: skip
    return hashlib.sha256("\n".join(sorted(kept)).encode()).hexdigest()[:16]


SETTINGS = ("train", "test", "n", "examples", "steps", "batch_size", "gen_tokens", "eval_tokens",
            "teacher_backend", "teacher_model", "student", "rounds", "per_round", "probe",
            "hard_test")  # fmt: skip
"""The options that change a row's scores: saved scores count only where all of them match."""


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    return {key: getattr(args, key) for key in SETTINGS}


def _row_file(scores_dir: Path, name: str, seed: int, row: str) -> Path:
    return scores_dir / f"{name}-s{seed}-{row}.json"


def _save_row(
    scores_dir: Path, name: str, seed: int, row: str, args: argparse.Namespace, result: dict[str, Any]
) -> None:
    scores_dir.mkdir(parents=True, exist_ok=True)
    path = _row_file(scores_dir, name, seed, row)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"settings": _settings(args), **result}) + "\n", encoding="utf-8")
    temporary.replace(path)


def _load_row(
    scores_dir: Path, name: str, seed: int, row: str, args: argparse.Namespace
) -> dict[str, Any] | None:
    """A finished row's saved scores, or None where there are none or they were made with other settings."""
    path = _row_file(scores_dir, name, seed, row)
    if not path.exists():
        return None
    saved = json.loads(path.read_text(encoding="utf-8"))
    if saved.pop("settings") != _settings(args):
        print(f"# {path}: made with other settings; running the row again", file=sys.stderr)
        return None
    if saved.get("recipe", 1) != RECIPES.get(row, 1):
        print(f"# {path}: made by an older recipe of the row; running it again", file=sys.stderr)
        return None
    return saved


def _pipeline(
    args: argparse.Namespace,
    data: dict[str, Any],
    seed: int,
    row: str,
    examples: int = 0,
    steps: int = 0,
    name: str = "arith",
) -> dict[str, Any]:
    teacher: dict[str, Any] = {"backend": args.teacher_backend, "model": args.teacher_model}
    if args.teacher_api_base:
        teacher["api_base"] = args.teacher_api_base
    train: dict[str, Any] = {"template": "cot_student.j2", "max_examples": examples, "max_steps": steps,
                             "batch_size": args.batch_size, "save_steps": 1000}  # fmt: skip
    if name in TASKS:
        stages = quality_tasks.task_stages(name, row, train, args.eval_tokens)
    else:
        stages = _stages(args, row, train)
    return {
        "name": f"quality-{row}",
        "seed": seed,
        "device": "auto",
        "outputs": "runs",
        "teacher": teacher,
        "student": {"model": args.student},
        "data": {**data, "split": {"train": args.train, "test": args.test}},
        "stages": stages,
    }


def _stages(args: argparse.Namespace, row: str, train: dict[str, Any]) -> list[dict[str, Any]]:
    """The stages of an arithmetic row (or of its pool): the teacher's samples, voted and filtered."""
    generate = {"generate": {"template": "cot_rationale.j2", "n": args.n, "temperature": 0.8,
                             "max_tokens": args.gen_tokens}}  # fmt: skip
    vote_all = {"self_consistency": {"target": "majority", "keep": "all"}}
    vote_agreeing = {"self_consistency": {"target": "majority", "keep": "agreeing"}}
    critics = {"filter": {"critics": ["answer_match", {"length": {"max_words": 120}}]}}
    stages: list[dict[str, Any]] = {
        "pool": [generate, vote_agreeing, critics],
        "label-only": [{"train": {**train, "target": "label"}}],
        "unfiltered": [generate, vote_all, {"train": train}],
        "filtered": [generate, vote_agreeing, critics, {"train": train}],
        "step-by-step": [generate, vote_agreeing, critics, {"train": {**train, "step_by_step": {}}}],
        "sbs-rationale": [generate, vote_agreeing, critics, {"train": {**train, "step_by_step": {}}}],
        "adversarial": [generate, vote_agreeing, critics, {"train": train}, _rounds(args, train, "hard")],
        "random-growth": [generate, vote_agreeing, critics, {"train": train}, _rounds(args, train, "random")],
    }[row]
    if row != "pool":
        evaluate = {"template": "cot_student.j2", "max_tokens": args.eval_tokens, "plot": False}
        if row == "sbs-rationale":
            evaluate["student_task"] = "rationale"
        stages.append({"evaluate": evaluate})
    return stages


def _rounds(args: argparse.Namespace, train: dict[str, Any], seeds_from: str) -> dict[str, Any]:
    """The adversarial stage of rows 6 and 7: the same rounds and budget, seeds chosen by hardness or not.

    Each round retrains on the whole grown pool (not row 4's sample of it), for 2 epochs.
    """
    answer = {"template": "cot_rationale.j2", "n": args.n, "temperature": 0.8, "max_tokens": args.gen_tokens}
    return {
        "adversarial": {
            "rounds": args.rounds,
            "stop_when_flat": False,
            "probe": args.probe,
            "per_round": args.per_round,
            "seeds_from": seeds_from,
            "hard_template": "lion_hard_arith.j2",
            "easy_template": "lion_easy_arith.j2",
            "max_tokens": 96,
            "temperature": 0.9,
            "student_max_tokens": args.eval_tokens,
            "check": {"critics": ["expression"]},
            "answer": answer,
            "self_consistency": {"target": "majority", "keep": "agreeing"},
            "filter": {"critics": ["answer_match", {"length": {"max_words": 120}}]},
            "train": {**train, "max_examples": None, "max_steps": -1, "epochs": 2},
            "evaluate": False,
        }
    }


def _hard_split(out: Path, name: str, seed: int, args: argparse.Namespace) -> Path:
    """A file of harder problems (builtin:arith at difficulty 2) for scoring rows on a hard split."""
    from synthdistill.sources.builtin import load_builtin

    path = out / "data" / f"{name}-s{seed}-hard.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    items = load_builtin("arith", {"difficulty": 2}, 1000 + seed, args.hard_test, path.parent)
    with path.open("w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item) + "\n")
    return path


def _hard_scores(
    folder: Path, model: str, hard_file: Path, args: argparse.Namespace, label: str = "student"
) -> list[float]:
    from synthdistill.runs.folder import read_records
    from synthdistill.stages.evaluate.stage import evaluate_model

    target = folder / f"hard-{label}"
    evaluate_model(
        model, str(hard_file), template="cot_student.j2", max_tokens=args.eval_tokens, output=target
    )
    return [float(r.verdicts["correct"].passed) for r in read_records(target / "predictions-student.jsonl")]


def _run(out: Path, run_name: str, pipeline: dict[str, Any]) -> dict[str, Any]:
    from synthdistill.config import load_pipeline
    from synthdistill.pipeline import RunOptions, run_pipeline

    path = out / "pipelines" / f"{run_name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False), encoding="utf-8")
    cwd = Path.cwd()
    os.chdir(out)  # the pipelines' `outputs: runs` lands inside the benchmark's folder
    try:
        manifest = run_pipeline(load_pipeline(path), RunOptions(run_name=run_name))
    finally:
        os.chdir(cwd)
    return manifest.model_dump(mode="json")


def _scores(folder: Path, label: str, evaluation: int = 0) -> list[float]:
    """A run's 1/0 scores of `label` (student or base) by its `evaluation`-th evaluate stage."""
    from synthdistill.runs.folder import read_records

    path = sorted(folder.glob(f"*-evaluate/predictions-{label}.jsonl"))[evaluation]
    return [float(r.verdicts["correct"].passed) for r in read_records(path)]


def _print_table(name: str, result: dict[str, Any], args: argparse.Namespace) -> None:
    teacher = quality_tasks.TEACHER + " (recorded)" if name in TASKS else args.teacher_model
    print(f"\n## {name}: {args.seeds} seed(s) x {args.test} test items, teacher {teacher}")
    print(f"| {'row':<25} | accuracy | 95% CI        | items | train records | seconds |")
    print(f"|{'-' * 27}|----------|---------------|-------|---------------|---------|")
    for row, values in result["rows"].items():
        low, high = values["ci"]
        if not values["items"]:  # every seed was skipped: its filter kept no rationale to train on
            print(f"| {NUMBERS[row] + '.':<4} {row:<21}| not run: no seed kept a rationale |")
            continue
        print(f"| {NUMBERS[row] + '.':<4} {row:<21}| {values['accuracy']:.3f}    | {low:.3f}-{high:.3f}   | "
              f"{values['items']:>5} | {values['records']:>13} | {values['seconds']:>7.0f} |")  # fmt: skip
    if result.get("hard"):
        print(f"\nHard split (builtin:arith difficulty 2, {args.hard_test} items a seed):")
        for row, values in result["hard"].items():
            low, high = values["ci"]
            print(f"- {row}: {values['accuracy']:.3f} ({low:.3f}-{high:.3f}, {values['items']} items)")
    for claim, gain in result["claims"].items():
        low, high = gain["ci"]
        print(f"- {claim}: {gain['verdict']} (gain {gain['diff']:+.3f}, 95% CI {low:+.3f}..{high:+.3f}, "
              f"P(better) {gain['p_better']:.2f})")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
