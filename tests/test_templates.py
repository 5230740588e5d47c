"""Prompt templates: lookup order, chat turns, strict variables and hashing."""

from pathlib import Path

import pytest

from synthdistill.errors import TemplateError
from synthdistill.templates import Templates

REPO = Path(__file__).resolve().parents[1]


def test_shipped_few_shot_template_renders_chat_turns():
    templates = Templates.for_pipeline(REPO / "pipelines")
    messages = templates.render_messages("cot_rationale.j2", {"question": "Ann has 2 cats. How many?"})
    assert [m["role"] for m in messages] == ["system", "user", "assistant"] * 1 + [
        "user",
        "assistant",
    ] * 2 + ["user"]
    assert messages[-1]["content"] == "Ann has 2 cats. How many?"
    assert messages[2]["content"].endswith("The answer is 12.")


def test_template_beside_the_pipeline_wins_over_prompts(tmp_path):
    (tmp_path / "cot_student.j2").write_text("Local: {{ question }}")
    templates = Templates.for_pipeline(tmp_path)
    assert templates.render_messages("cot_student.j2", {"question": "q"}) == [
        {"role": "user", "content": "Local: q"}
    ]


def test_missing_variable_names_template_and_variable(tmp_path):
    (tmp_path / "t.j2").write_text("{{ question }} {{ context }}")
    with pytest.raises(TemplateError, match=r"template 't.j2': 'context' is undefined.*data.fields"):
        Templates([tmp_path]).render("t.j2", {"question": "q"})


def test_missing_template_lists_where_it_looked(tmp_path):
    with pytest.raises(TemplateError, match=f"'nope.j2' not found in {tmp_path}"):
        Templates([tmp_path]).render("nope.j2", {})


def test_hash_follows_the_source(tmp_path):
    path = tmp_path / "t.j2"
    path.write_text("A {{ question }}")
    first = Templates([tmp_path]).hash("t.j2")
    path.write_text("B {{ question }}")
    assert Templates([tmp_path]).hash("t.j2") != first


def test_an_expression_that_fails_on_a_record_is_a_template_error_naming_the_template(tmp_path):
    (tmp_path / "bad.j2").write_text("{{ count + 1 }}")
    templates = Templates.for_pipeline(tmp_path)
    with pytest.raises(TemplateError, match=r"template 'bad.j2' failed on a record: TypeError.*\| int"):
        templates.render("bad.j2", {"count": "4"})
