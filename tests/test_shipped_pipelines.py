"""The shipped pipelines, above all those for real tasks: pipelines/cqa.yaml (multiple choice), esnli.yaml
(NLI labels), svamp.yaml and gsm8k.yaml (numbers).

Those four read their hub datasets by name, which a test machine does not have; here each is pointed at
its copy in ../shared/data (with the fields that copy's reshaped columns need), so that `validate` checks
its templates, task type and stage order against real rows. The hub's own layouts are rebuilt from the
same rows as `datasets` folders, to check the field mappings the pipelines ship. The slow test runs
cqa.yaml end to end on the embedded model at a tiny size.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest
import yaml

from synthdistill.cli import main
from synthdistill.parsing import answer_line
from synthdistill.runs.folder import read_records
from synthdistill.templates import Templates

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"
SHIPPED = sorted(path.stem for path in PIPELINES.glob("*.yaml"))
TASK_STAGES = "ok (5 stages: generate, self_consistency, filter, train, evaluate)"
CQA_COPY_FIELDS = {"question": "question", "choices": "choices", "answer": "answer"}
COPIES: dict[str, tuple[str, dict[str, str] | None]] = {
    "cqa": ("cqa/train.jsonl", CQA_COPY_FIELDS),
    "esnli": ("esnli/valid.jsonl", None),
    "svamp": ("svamp/SVAMP.json", None),
    "gsm8k": ("gsm8k/train.jsonl", None),
}
"""Each hub-reading pipeline's copy in ../shared/data, and the fields it needs in place of the pipeline's
(None: the pipeline's own mapping reads the copy too)."""
NLI_LABELS = ("entailment", "neutral", "contradiction")


def on_copy(name: str, shared_data: Path) -> list[str]:
    """The --set arguments that point pipeline `name` at its copy in ../shared/data."""
    file, fields = COPIES[name]
    args = ["--set", f"data.source={shared_data / file}"]
    if fields is not None:
        args += ["--set", f"data.fields={json.dumps(fields)}"]
    return args


def source_of(name: str) -> str:
    return yaml.safe_load((PIPELINES / f"{name}.yaml").read_text())["data"]["source"]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_pipeline_validates_a_hub_reading_one_on_its_shared_copy(name, request, capfd):
    args = ["validate", str(PIPELINES / f"{name}.yaml")]
    if source_of(name).startswith("hf:"):
        assert name in COPIES, f"{name}.yaml reads the hub: give it a copy in ../shared/data in COPIES"
        args += on_copy(name, request.getfixturevalue("shared_data"))
    code = main(args)
    out, err = capfd.readouterr()
    assert code == 0, err
    assert f"{name}.yaml: ok" in out and err == ""


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("cqa", "hf:commonsense_qa"),
        ("esnli", "hf:esnli"),
        ("svamp", "hf:ChilleD/SVAMP"),
        ("gsm8k", "hf:gsm8k"),
    ],
)
def test_each_task_pipeline_reads_its_hub_dataset_by_name_and_declares_its_task(name, source):
    config = yaml.safe_load((PIPELINES / f"{name}.yaml").read_text())
    assert config["data"]["source"] == source
    assert config["teacher"] == {"backend": "transformers", "model": "smollm2-135m"}
    assert config["student"] == {"model": "smollm2-135m"}
    expected = {"cqa": "choice", "esnli": "label"}.get(name, "number")
    assert config["data"]["task"]["type"] == expected


@pytest.mark.parametrize("name", sorted(COPIES))
def test_each_task_pipeline_checks_its_templates_task_and_stages_against_every_row(name, shared_data, capfd):
    # The splits take every row of the copy, so every gold answer is checked against its choices or labels.
    size = {"cqa": 9741, "esnli": 9840, "svamp": 1000, "gsm8k": 7473}[name]
    split = ["--set", f"data.split.train={size - 100}", "--set", "data.split.test=100"]
    code = main(["validate", str(PIPELINES / f"{name}.yaml"), *on_copy(name, shared_data), *split])
    out, err = capfd.readouterr()
    assert code == 0, err
    assert TASK_STAGES in out and err == ""


def hub_folder(name: str, shared_data: Path, folder: Path) -> Path:
    """The first 300 rows of `name`'s shared copy in its hub dataset's own layout, saved as a `datasets`
    folder (train and test splits, as the hub has them) under `folder`."""
    import datasets

    file, _ = COPIES[name]
    path = shared_data / file
    if path.suffix == ".json":
        rows = json.loads(path.read_text())[:300]
    else:
        with path.open(encoding="utf-8") as handle:
            rows = [json.loads(line) for line in itertools.islice(handle, 300)]
    if name == "cqa":
        rows = [
            {
                "id": row["id"],
                "question": row["question"],
                "question_concept": "",
                "choices": {"label": list("ABCDE"), "text": row["choices"]},
                "answerKey": "ABCDE"[row["choices"].index(row["answer"])],
            }
            for row in rows
        ]
    elif name == "esnli":
        rows = [
            {
                "premise": row["premise"],
                "hypothesis": row["hypothesis"],
                "label": NLI_LABELS.index(row["label"]),
                "explanation_1": row["explanation"],
                "explanation_2": "",
                "explanation_3": "",
            }
            for row in rows
        ]
    elif name == "svamp":
        rows = [{**row, "question_concat": f"{row['Body']} {row['Question']}"} for row in rows]
    train = datasets.Dataset.from_list(rows)
    if name == "esnli":
        train = train.cast_column("label", datasets.ClassLabel(names=list(NLI_LABELS)))
    datasets.DatasetDict({"train": train, "test": train.select(range(10))}).save_to_disk(folder / name)
    return folder / name


@pytest.mark.parametrize("name", ["cqa", "esnli", "svamp", "gsm8k"])
def test_the_shipped_field_mappings_read_the_hub_layout(name, shared_data, tmp_path, capfd):
    source = f"data.source=hf:{hub_folder(name, shared_data, tmp_path)}"
    code = main(["validate", str(PIPELINES / f"{name}.yaml"), "--set", source])
    out, err = capfd.readouterr()
    assert code == 0, err
    assert TASK_STAGES in out


@pytest.mark.parametrize("name", ["cqa", "esnli"])
def test_the_commented_recorded_stage_validates_on_palms_rationales(name, shared_data, capfd):
    text = (PIPELINES / f"{name}.yaml").read_text()
    (line,) = re.findall(r"^\s*#\s*(- generate: \{recorded: .*\})$", text, re.MULTILINE)
    (stage,) = yaml.safe_load(line)
    args = ["validate", str(PIPELINES / f"{name}.yaml"), *on_copy(name, shared_data)]
    args += ["--set", "data.fields.palm_cot=palm_cot", "--set", f"stages.0={json.dumps(stage)}"]
    code = main(args)
    out, err = capfd.readouterr()
    assert code == 0, err
    assert TASK_STAGES in out
    assert stage["generate"]["recorded"]["field"] == "palm_cot"


def test_the_multiple_choice_prompts_list_the_choices_lettered(shared_data):
    row = json.loads((shared_data / "cqa" / "train.jsonl").open(encoding="utf-8").readline())
    lettered = " ".join(f"({letter}) {text}" for letter, text in zip("abcde", row["choices"], strict=True))
    templates = Templates.for_pipeline(PIPELINES)
    for name in ("cqa_rationale.j2", "cqa_student.j2"):
        last = templates.render_messages(name, row)[-1]
        assert last["role"] == "user" and row["question"] in last["content"]
        assert f"Answer Choices: {lettered}" in last["content"], name


def test_the_nli_prompts_give_premise_hypothesis_and_the_three_labels(shared_data):
    row = json.loads((shared_data / "esnli" / "valid.jsonl").open(encoding="utf-8").readline())
    templates = Templates.for_pipeline(PIPELINES)
    for name in ("esnli_rationale.j2", "esnli_student.j2"):
        last = templates.render_messages(name, row)[-1]["content"]
        assert f"Premise: {row['premise']}\nHypothesis: {row['hypothesis']}" in last, name
        assert all(label in last for label in NLI_LABELS), name


@pytest.mark.parametrize("name", ["cqa", "esnli", "svamp", "gsm8k"])
def test_every_few_shot_answer_ends_in_an_answer_line_the_scorer_reads(name):
    templates = Templates.for_pipeline(PIPELINES)
    variables = {"question": "Q?", "choices": ["x", "y"], "premise": "P.", "hypothesis": "H."}
    messages = templates.render_messages(f"{name}_rationale.j2", variables)
    answers = [message["content"] for message in messages if message["role"] == "assistant"]
    assert len(answers) >= 2 and messages[-1]["role"] == "user"
    for answer in answers:
        line = answer_line(answer)
        assert line is not None and answer.rstrip().endswith(line), answer


@pytest.mark.slow
def test_cqa_runs_end_to_end_on_the_embedded_model_and_is_scored_as_choice(
    shared_data, tmp_path, monkeypatch, capfd
):
    monkeypatch.chdir(tmp_path)
    args = ["run", str(PIPELINES / "cqa.yaml"), "--limit", "4", *on_copy("cqa", shared_data)]
    for override in ("generate.n=1", "generate.max_tokens=64", "train.max_steps=1", "evaluate.max_tokens=48"):
        args += ["--set", override]
    code = main(args)
    _, err = capfd.readouterr()
    assert code == 0, err
    assert "scored as choice" in err
    manifest = json.loads(Path("outputs/cqa/manifest.json").read_text())
    assert manifest["status"] == "done"
    stages = {stage["name"]: stage for stage in manifest["stages"]}
    assert stages["generate"]["records_in"] == stages["generate"]["records_out"] == 4
    # One sample a question: self_consistency hands on at most one rationale for each.
    assert stages["self_consistency"]["records_in"] == 4
    assert stages["filter"]["records_in"] == stages["self_consistency"]["records_out"] <= 4
    kept = list(
        read_records(Path("outputs/cqa") / stages["filter"]["folder"] / "records.jsonl", kept_only=True)
    )
    assert stages["filter"]["records_out"] == len(kept) >= 1
    assert stages["train"]["records_in"] == len(kept)
    for record in kept:
        assert record.answer == record.input["answer"] and record.answer in record.input["choices"]
    for model in ("base", "student"):
        metrics = manifest["metrics"][model]
        assert metrics["scoring"] == "choice" and metrics["n"] == 4
        assert 0 <= metrics["correct"] <= 4
