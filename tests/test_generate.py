"""The generate stage: parse modes, `expand` fan-out, the order of requests and of outputs.

The teacher is the scripted server; its responder echoes what it was asked, so each output can be
traced to its request.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from synthdistill.config import load_pipeline
from synthdistill.errors import ConfigError
from synthdistill.pipeline import RunOptions, run_pipeline
from synthdistill.runs.folder import read_records
from synthdistill.testing.scripted_server import ScriptedServer

PIPELINE = """
name: g
seed: 0
teacher: {{backend: openai, model: scripted, api_base: "{url}", max_concurrency: 1, batch_size: 2}}
data: {{source: builtin:arith, split: {{train: 3, test: 0}}}}
stages:
  - generate: {{template: ask.j2, n: 1, parse: rationale, expand: {{style: [short, long]}}}}
"""
TEMPLATE = "Answer in a {{ style }} way: {{ question }}"


def echo(messages, params, index):
    prompt = messages[-1]["content"]
    style = prompt.split(" way")[0].removeprefix("Answer in a ")
    return f"A {style} answer.\nThe answer is {len(prompt)}."


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ask.j2").write_text(TEMPLATE)
    with ScriptedServer() as server:
        server.responder = echo
        path = tmp_path / "g.yaml"
        path.write_text(PIPELINE.format(url=server.url))
        yield path, server


def test_expand_makes_one_child_per_value_carrying_the_value(project):
    path, _ = project
    manifest = run_pipeline(load_pipeline(path), RunOptions())
    assert (manifest.stages[0].records_in, manifest.stages[0].records_out) == (3, 6)
    records = list(read_records(Path("outputs/g/01-generate/records.jsonl")))
    # Outputs come record by record, in input order, each record's values in their order.
    assert [r.input["style"] for r in records] == ["short", "long"] * 3
    assert [r.rationale for r in records] == ["A short answer.", "A long answer."] * 3
    parents = [r.parent_id for r in records]
    assert parents[0] == parents[1] != parents[2] == parents[3] != parents[4]
    assert len({r.id for r in records}) == 6 and not {r.id for r in records} & set(parents)
    assert all(r.source_id == r.parent_id for r in records)
    assert manifest.stages[0].details["by_value"]["long"] == {
        "samples_parsed": 3,
        "samples_failed": 0,
        "records_made": 3,
    }


def test_expanded_requests_go_value_major_within_a_chunk_of_records(project):
    path, server = project
    run_pipeline(load_pipeline(path), RunOptions())
    # The chunk is the teacher's batch_size (2 records): both records' "short", then both "long".
    styles = [body["messages"][-1]["content"].split(" way")[0][12:] for body in server.stats.bodies]
    assert styles == ["short", "short", "long", "long", "short", "long"]


def test_without_expand_a_record_keeps_its_id_and_input(project):
    path, _ = project
    (path.parent / "ask.j2").write_text("Answer: {{ question }}")
    manifest = run_pipeline(load_pipeline(path, ["generate.expand={}"]), RunOptions())
    records = list(read_records(Path("outputs/g/01-generate/records.jsonl")))
    assert manifest.stages[0].records_out == 3
    assert all(r.parent_id is None and "style" not in r.input for r in records)
    assert "by_value" not in manifest.stages[0].details
    assert manifest.stages[0].details["parse_rate"] == 1.0


def test_a_repeated_expand_value_is_refused(project):
    path, _ = project
    with pytest.raises(ConfigError, match=r"generate\.expand.*style repeats a value"):
        load_pipeline(path, ["generate.expand.style=[short, short]"])
