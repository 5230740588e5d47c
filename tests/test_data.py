"""Specification of task data: the built-in arith task, file sources, field mapping and splitting."""

from __future__ import annotations

import ast
import csv
import json
import logging
import operator
import re
from pathlib import Path
from typing import Any

import pytest

from synthdistill.config import DataConfig
from synthdistill.data import load_splits
from synthdistill.errors import DataError
from synthdistill.sources.builtin import load_builtin
from synthdistill.sources.files import load_file

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"the shared datasets folder {SHARED_DATA} is absent (it is not shipped)"
)
GSM8K = SHARED_DATA / "gsm8k" / "train.jsonl"
SVAMP = SHARED_DATA / "svamp" / "SVAMP.json"
PIPELINE = "pipe.yaml"


def arith(count: int, seed: int = 0, difficulty: int = 1) -> list[dict[str, Any]]:
    return list(load_builtin("arith", {"difficulty": difficulty}, seed, count, Path(".")))


def splits(tmp_path: Path, seed: int = 0, limit: int | None = None, **data: Any) -> tuple[list, list]:
    return load_splits(DataConfig(**data), seed=seed, base_dir=tmp_path, limit=limit, file=PIPELINE)


def data_error(tmp_path: Path, **data: Any) -> str:
    with pytest.raises(DataError) as caught:
        splits(tmp_path, **data)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{PIPELINE}: data.")
    return message


def evaluate(expression: str) -> int:
    """The value of an expression of integers, +, - and *, computed apart from the generator."""
    operators = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}

    def value(node: ast.expr) -> int:
        if isinstance(node, ast.BinOp) and type(node.op) in operators:
            return operators[type(node.op)](value(node.left), value(node.right))
        assert isinstance(node, ast.Constant) and type(node.value) is int, ast.dump(node)
        return node.value

    return value(ast.parse(expression, mode="eval").body)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


QA_ROWS = [{"question": f"What is {n} plus {n}?", "answer": str(2 * n)} for n in range(30)]


# builtin:arith


def test_arith_same_seed_gives_the_same_items_and_another_seed_others():
    assert arith(200, seed=7) == arith(200, seed=7)
    first, other = arith(200, seed=7), arith(200, seed=8)
    shared = {item["question"] for item in first} & {item["question"] for item in other}
    assert len(shared) < 5


def test_arith_asking_for_more_extends_the_list_without_changing_its_start():
    assert arith(500)[:100] == arith(100)


def test_arith_makes_at_least_5000_unique_questions_at_difficulty_1():
    items = arith(5000)
    assert len(items) == 5000
    assert len({item["question"] for item in items}) == 5000


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_arith_gold_answers_are_the_values_of_their_expressions(difficulty):
    for item in arith(1000, seed=3, difficulty=difficulty):
        assert set(item) == {"question", "answer", "difficulty", "expression"}
        assert item["difficulty"] == difficulty
        assert item["answer"] == str(evaluate(item["expression"]))
        assert int(item["answer"]) >= 0
        numbers = re.findall(r"\d+", item["expression"])
        assert all(re.search(rf"\b{n}\b", item["question"]) for n in numbers), item
        # No number below 2, so no "1 apples".
        assert min(map(int, numbers)) >= 2, item
        assert item["question"].endswith("?")


def test_arith_difficulty_sets_the_number_of_arithmetic_steps():
    for difficulty in (1, 2, 3):
        steps = {len(re.findall(r"[-+*]", item["expression"])) for item in arith(300, difficulty=difficulty)}
        assert steps == {difficulty}
    assert {"+", "-", "*"} <= set("".join(item["expression"] for item in arith(300)))


def test_arith_is_the_default_source_and_its_splits_are_disjoint(tmp_path):
    train, test = splits(tmp_path, split={"train": 300, "test": 100})
    assert (len(train), len(test)) == (300, 100)
    assert not {r.input["question"] for r in train} & {r.input["question"] for r in test}
    assert train[0].input["difficulty"] == "1"
    assert train[0].gold == str(evaluate(train[0].input["expression"]))
    again = splits(tmp_path, split={"train": 300, "test": 100})
    assert [r.id for r in again[0]] == [r.id for r in train]
    assert [r.id for r in splits(tmp_path, seed=1, split={"train": 300, "test": 100})[0]] != [
        r.id for r in train
    ]


def test_arith_options_reach_the_generator(tmp_path):
    train, _ = splits(tmp_path, options={"difficulty": 3}, split={"train": 20, "test": 5})
    assert all(r.input["expression"].count("(") == 2 for r in train)


def test_unknown_builtin_task_lists_the_valid_ones(tmp_path):
    message = data_error(tmp_path, source="builtin:algebra")
    assert "data.source" in message and "'algebra'" in message and "valid tasks: arith" in message


def test_bad_difficulty_names_the_option_and_its_values(tmp_path):
    message = data_error(tmp_path, options={"difficulty": 7})
    assert "difficulty" in message and "7" in message and "1, 2 or 3" in message
    assert "valid options: difficulty" in data_error(tmp_path, options={"dificulty": 2})


def test_limit_keeps_the_first_items_of_each_split(tmp_path):
    train, test = splits(tmp_path, split={"train": 50, "test": 20})
    small_train, small_test = splits(tmp_path, limit=5, split={"train": 50, "test": 20})
    assert [r.id for r in small_train] == [r.id for r in train[:5]]
    assert [r.id for r in small_test] == [r.id for r in test[:5]]


# Real datasets


@needs_shared
def test_gsm8k_answers_are_the_number_after_the_hashes():
    raw = {row["question"]: row["answer"] for row in map(json.loads, GSM8K.read_text().splitlines())}
    train, test = load_splits(
        DataConfig(
            source=str(GSM8K),
            fields={"question": "question", "answer": {"from": "answer", "regex": r"####\s*([-0-9.,]+)"}},
            split={"train": 400, "test": 100},
        ),
        seed=0,
        base_dir=Path("."),
    )
    assert (len(train), len(test)) == (400, 100)
    for record in train + test:
        assert set(record.input) == {"question", "answer"}
        assert record.gold == raw[record.input["question"]].rsplit("#### ", 1)[1].strip()


@needs_shared
def test_svamp_question_joins_body_and_question_and_answers_are_integers():
    raw = {f"{row['Body']} {row['Question']}": row["Answer"] for row in json.loads(SVAMP.read_text())}
    train, test = load_splits(
        DataConfig(
            source="svamp/SVAMP.json",
            fields={"question": "{{ Body }} {{ Question }}", "answer": "Answer"},
            split={"train": 700, "test": 300},
        ),
        seed=0,
        base_dir=SHARED_DATA,
    )
    assert (len(train), len(test)) == (700, 300)
    for record in train + test:
        assert record.gold == str(int(raw[record.input["question"]]))
        assert not record.gold.endswith(".0")


# File formats


def test_csv_round_trip(tmp_path):
    with (tmp_path / "items.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["question", "answer"])
        writer.writeheader()
        writer.writerows([*QA_ROWS, {"question": 'A "quoted", comma question?', "answer": "1"}])
    train, test = splits(tmp_path, source="items.csv", split={"train": 21, "test": 10})
    assert sorted(r.input["question"] for r in train + test) == sorted(
        [row["question"] for row in QA_ROWS] + ['A "quoted", comma question?']
    )
    golds = {r.input["question"]: r.gold for r in train + test}
    assert all(golds[row["question"]] == row["answer"] for row in QA_ROWS)


def test_parquet_round_trip_writes_integral_floats_as_integers(tmp_path):
    import pyarrow
    import pyarrow.parquet

    table = pyarrow.table({"q": [row["question"] for row in QA_ROWS], "a": [2.0 * n for n in range(30)]})
    pyarrow.parquet.write_table(table, tmp_path / "items.parquet", row_group_size=7)
    train, test = splits(
        tmp_path,
        source="items.parquet",
        fields={"question": "q", "answer": "a"},
        split={"train": 20, "test": 10},
    )
    golds = {r.input["question"]: r.gold for r in train + test}
    assert golds == {row["question"]: row["answer"] for row in QA_ROWS}


def test_json_array_and_object_with_a_key(tmp_path):
    (tmp_path / "array.json").write_text(json.dumps(QA_ROWS))
    (tmp_path / "object.json").write_text(json.dumps({"meta": "x", "rows": QA_ROWS}))
    train, test = splits(tmp_path, source="array.json", split={"train": 20, "test": 10})
    keyed = splits(tmp_path, source="object.json", options={"key": "rows"}, split={"train": 20, "test": 10})
    assert [r.id for r in keyed[0] + keyed[1]] == [r.id for r in train + test]
    message = data_error(tmp_path, source="object.json")
    assert "data.options.key" in message and "rows" in message


def test_hf_folder_saved_with_save_to_disk(tmp_path):
    import datasets

    datasets.Dataset.from_list(QA_ROWS).save_to_disk(str(tmp_path / "saved"))
    train, test = splits(tmp_path, source="hf:saved", split={"train": 20, "test": 10})
    assert sorted(r.input["question"] for r in train + test) == sorted(row["question"] for row in QA_ROWS)


def test_hf_name_not_in_the_cache_fails_offline_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    message = data_error(tmp_path, source="hf:synthdistill-tests/no-such-dataset")
    assert "no-such-dataset" in message and "offline" in message and "save_to_disk" in message


def test_jsonl_torn_last_line_is_ignored(tmp_path, caplog):
    path = write_jsonl(tmp_path / "items.jsonl", QA_ROWS)
    with path.open("a") as handle:
        handle.write('{"question": "torn')
    with caplog.at_level(logging.WARNING):
        train, test = splits(tmp_path, source="items.jsonl", split={"train": 20, "test": 10})
    assert len(train) + len(test) == 30
    assert "torn last line 31" in caplog.text


def test_jsonl_bad_line_before_the_last_names_its_line_number(tmp_path):
    lines = [json.dumps(row) for row in QA_ROWS]
    lines[4] = lines[4][:10]
    (tmp_path / "items.jsonl").write_text("\n".join(lines) + "\n")
    message = data_error(tmp_path, source="items.jsonl")
    assert "data.source" in message and "items.jsonl: line 5 is not valid JSON" in message


def test_missing_file_names_the_path_and_the_fix(tmp_path):
    message = data_error(tmp_path, source="nowhere/items.jsonl")
    assert "data.source" in message and str(tmp_path / "nowhere" / "items.jsonl") in message
    assert "check the path" in message


def test_unsupported_extension_lists_the_supported_ones(tmp_path):
    (tmp_path / "items.txt").write_text("hello\n")
    message = data_error(tmp_path, source="items.txt")
    assert "'.txt'" in message and ".jsonl, .json, .csv, .parquet" in message


def test_load_file_reads_at_most_count_rows(tmp_path):
    write_jsonl(tmp_path / "items.jsonl", QA_ROWS)
    assert list(load_file("items.jsonl", {}, 0, 3, tmp_path)) == QA_ROWS[:3]


# Field mapping


def test_missing_column_names_the_field_the_column_and_the_available_columns(tmp_path):
    write_jsonl(tmp_path / "items.jsonl", QA_ROWS)
    message = data_error(
        tmp_path, source="items.jsonl", fields={"question": "question", "answer": "solution"}
    )
    assert message == (
        f"{PIPELINE}: data.fields.answer: column 'solution' not found in items.jsonl; "
        "available columns: question, answer; fix data.fields.answer"
    )


def test_missing_column_in_a_jinja_expression_is_named(tmp_path):
    write_jsonl(tmp_path / "items.jsonl", QA_ROWS)
    message = data_error(tmp_path, source="items.jsonl", fields={"question": "{{ Body }} {{ question }}"})
    assert "data.fields.question: column 'Body' not found" in message
    assert "available columns: question, answer" in message


def test_missing_column_of_a_regex_field_is_named(tmp_path):
    write_jsonl(tmp_path / "items.jsonl", QA_ROWS)
    message = data_error(tmp_path, source="items.jsonl", fields={"answer": {"from": "text", "regex": "x"}})
    assert "data.fields.answer: column 'text' not found" in message


def test_rows_the_regex_does_not_match_are_skipped_and_counted(tmp_path, caplog):
    rows = [{"q": f"Question {n}?", "a": f"so #### {n}" if n % 3 else "no final answer"} for n in range(30)]
    write_jsonl(tmp_path / "items.jsonl", rows)
    fields = {"question": "q", "answer": {"from": "a", "regex": r"####\s*(\d+)"}}
    with caplog.at_level(logging.WARNING):
        train, test = splits(tmp_path, source="items.jsonl", fields=fields, split={"train": 15, "test": 5})
    assert len(train) + len(test) == 20
    assert all(r.gold == r.input["question"].split()[1].rstrip("?") for r in train + test)
    assert "data.fields.answer: skipped 10 of 30 rows" in caplog.text


def test_a_regex_that_matches_no_row_is_an_error(tmp_path):
    write_jsonl(tmp_path / "items.jsonl", QA_ROWS)
    message = data_error(
        tmp_path, source="items.jsonl", fields={"answer": {"from": "answer", "regex": "####"}}
    )
    assert "data.fields.answer" in message and "no row of items.jsonl" in message


def test_a_regex_without_groups_keeps_the_whole_match(tmp_path):
    write_jsonl(tmp_path / "items.jsonl", QA_ROWS)
    fields = {"question": "question", "answer": {"from": "question", "regex": r"\d+"}}
    train, _ = splits(tmp_path, source="items.jsonl", fields=fields, split={"train": 20, "test": 10})
    assert all(r.gold == r.input["question"].split()[2] for r in train)


def test_malformed_mappings_are_refused_before_reading(tmp_path):
    assert "invalid regex '(('" in data_error(tmp_path, fields={"answer": {"from": "a", "regex": "(("}})
    assert "{from: column, regex: pattern}" in data_error(tmp_path, fields={"answer": {"column": "a"}})
    assert "invalid jinja expression" in data_error(tmp_path, fields={"question": "{{ Body "})


def test_empty_mapping_keeps_the_columns(tmp_path):
    write_jsonl(tmp_path / "items.jsonl", [{**row, "score": 1.0, "tags": ["a"]} for row in QA_ROWS])
    train, _ = splits(tmp_path, source="items.jsonl", split={"train": 20, "test": 10})
    assert set(train[0].input) == {"question", "answer", "score", "tags"}
    assert train[0].input["score"] == "1" and train[0].input["tags"] == ["a"]


# Splitting


def test_duplicate_questions_are_kept_once(tmp_path):
    write_jsonl(tmp_path / "items.jsonl", QA_ROWS + QA_ROWS[:10])
    train, test = splits(tmp_path, source="items.jsonl", split={"train": 100, "test": 10})
    assert len(train) + len(test) == 30


def test_fewer_rows_than_asked_uses_them_all_and_warns(tmp_path, caplog):
    write_jsonl(tmp_path / "items.jsonl", QA_ROWS)
    with caplog.at_level(logging.WARNING):
        train, test = splits(tmp_path, source="items.jsonl", split={"train": 100, "test": 100})
    assert (len(train), len(test)) == (15, 15)
    assert "fewer than the 200 asked" in caplog.text


def test_test_source_gives_the_test_split_and_train_never_overlaps_it(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", QA_ROWS)
    write_jsonl(tmp_path / "test.jsonl", [*QA_ROWS[:5], {"question": "Held out?", "answer": "0"}])
    train, test = splits(
        tmp_path, source="train.jsonl", test_source="test.jsonl", split={"train": 100, "test": 6}
    )
    assert len(test) == 6 and "Held out?" in {r.input["question"] for r in test}
    assert len(train) == 25
    assert not {r.input["question"] for r in train} & {r.input["question"] for r in test}


def test_test_source_errors_name_their_key(tmp_path):
    message = data_error(tmp_path, test_source="missing.jsonl")
    assert "data.test_source" in message and "missing.jsonl" in message
