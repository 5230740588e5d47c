"""Pipeline files: validation, --set overrides, and error messages that name the file and key."""

from pathlib import Path

import pytest

from synthdistill.config import apply_override, load_pipeline
from synthdistill.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_shipped_cot_pipeline_validates_with_defaults():
    pipeline = load_pipeline(REPO / "pipelines" / "cot.yaml")
    assert [s.name for s in pipeline.stages] == [
        "generate",
        "self_consistency",
        "filter",
        "train",
        "evaluate",
    ]
    assert [s.folder for s in pipeline.stages][:2] == ["01-generate", "02-self_consistency"]
    assert pipeline.stages[0].config.n == 4
    assert pipeline.config.teacher.backend == "transformers"


def test_set_overrides_reach_stage_options_by_name_and_position(tmp_path):
    path = write(tmp_path, "name: t\nstages:\n  - generate: {n: 4}\n  - filter: {critics: [answer_match]}\n")
    pipeline = load_pipeline(
        path, ["generate.n=2", "stages.1.filter.batch_size=3", "seed=7", "teacher.model=m"]
    )
    assert pipeline.stages[0].config.n == 2
    assert pipeline.stages[1].config.batch_size == 3
    assert pipeline.config.seed == 7
    assert pipeline.config.teacher.model == "m"


@pytest.mark.parametrize(
    ("text", "key", "fix"),
    [
        ("name: t\nstages: [{generate: {n: 0}}]\n", "stages[0].generate.n", "greater than or equal to 1"),
        ("name: t\nstages: [{generate: {temprature: 1}}]\n", "stages[0].generate.temprature", "remove it"),
        ("name: t\nstages: [nope]\n", "stages[0]", "valid stages: adversarial, "),
        ("name: t\nstages: [{filter: {critics: [nope]}}]\n", "stages[0].filter.critics", "valid critics:"),
        ("name: t\nteacher: {api_key: sk-x}\nstages: [generate]\n", "teacher", "api_key_env"),
        ("stages: [generate]\n", "name", "add it"),
        ("name: t\nstages: [generate\n", "YAML syntax error at line", "fix the YAML"),
        (
            "name: t\nteachers:\n  a: {model: x}\n  a: {model: y}\nstages: [generate]\n",
            "line 4",
            "given twice",
        ),
    ],
)
def test_bad_pipelines_name_file_key_and_fix(tmp_path, text, key, fix):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_pipeline(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert key in message and fix in message
    assert "\n" not in message


def test_inline_key_never_echoed_back(tmp_path):
    path = write(tmp_path, "name: t\nteacher: {api_key: sk-secret-123}\nstages: [generate]\n")
    with pytest.raises(ConfigError) as info:
        load_pipeline(path)
    assert "sk-secret-123" not in str(info.value)


def test_override_without_equals_is_a_config_error():
    with pytest.raises(ConfigError, match="key=value"):
        apply_override({"stages": []}, "seed")


def test_set_reaches_a_stage_written_as_a_bare_name(tmp_path):
    path = write(tmp_path, "name: t\nstages: [generate]\n")
    assert load_pipeline(path, ["generate.n=3"]).stages[0].config.n == 3


def test_set_through_a_scalar_is_a_config_error(tmp_path):
    path = write(tmp_path, "name: t\nseed: 0\nstages: [generate]\n")
    with pytest.raises(ConfigError, match="is not a mapping"):
        load_pipeline(path, ["seed.x=1"])


def test_set_by_stage_name_is_refused_when_two_stages_share_the_name(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: p\nstages:\n  - generate: {n: 1}\n  - filter: {critics: [length]}\n  - generate: {n: 1}\n"
    )
    with pytest.raises(
        ConfigError,
        match=r"2 generate stages; name one by position: stages.0.generate.n or stages.2.generate.n",
    ):
        load_pipeline(path, ["generate.n=3"])
    loaded = load_pipeline(path, ["stages.2.generate.n=3"])
    assert [spec.config.n for spec in loaded.stages if spec.name == "generate"] == [1, 3]


def test_a_yaml_error_in_set_names_set_and_the_key_without_echoing_the_value():
    with pytest.raises(ConfigError) as info:
        apply_override({"name": "t", "stages": [{"generate": {}}]}, "generate.n=[sk-1")
    message = str(info.value)
    assert message.startswith("--set: generate.n: the value after = is not valid YAML")
    assert "close its brackets" in message and "sk-1" not in message and "\n" not in message


def test_set_on_a_stage_the_pipeline_lacks_lists_the_stages_it_has(tmp_path):
    path = write(tmp_path, "name: t\nstages: [generate, {filter: {critics: [answer_match]}}]\n")
    with pytest.raises(ConfigError) as info:
        load_pipeline(path, ["train.max_steps=2"])
    assert str(info.value) == (
        f"--set: train.max_steps: the pipeline {path} has no train stage (its stages are generate, "
        "filter); --set a stage it has, or add a train stage to the file"
    )
    with pytest.raises(ConfigError, match=r"unknown key 'sed'; --set takes a pipeline key \(name, seed,"):
        load_pipeline(path, ["sed=1"])


@pytest.mark.parametrize(
    ("data", "key", "where"),
    [
        (
            b"name: t\nstages:\n  - generate: {template: caf\xe9.j2}\n",
            "stages[0].generate.template",
            "line 3",
        ),
        (b"name: t\n# caf\xe9\nstages: [generate]\n", None, "line 2, column 6"),
        (b"name: t\ndata: {source: \xff.csv}\nstages: [generate]\n", "data.source", "line 2, column 16"),
    ],
)
def test_a_pipeline_that_is_not_utf8_names_the_line_and_the_key(tmp_path, data, key, where):
    path = tmp_path / "p.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        load_pipeline(path)
    assert info.value.key == key
    assert where in str(info.value) and "save the file as UTF-8" in str(info.value)


@pytest.mark.parametrize(
    ("teacher", "key", "fix"),
    [
        ("{backend: anthropic}", "teacher.backend", "registered backends: litellm, openai, transformers"),
        ("{backend: openai, api_base: '127.0.0.1:41375'}", "teacher.api_base", "http://127.0.0.1:41375"),
        ("{backend: openai, api_base: ['http://a/v1', 'b:1/v1']}", "teacher.api_base", "http://b:1/v1"),
        ("{backend: openai, api_base: 'http://u:pw@h/v1'}", "teacher.api_base", "holds a password"),
    ],
)
def test_a_teacher_is_checked_at_validation(tmp_path, teacher, key, fix):
    path = write(tmp_path, f"name: t\nteacher: {teacher}\nstages: [generate]\n")
    with pytest.raises(ConfigError) as info:
        load_pipeline(path)
    assert info.value.key == key and fix in str(info.value)
    assert "pw" not in str(info.value)


@pytest.mark.parametrize(
    "options",
    [
        "{api_key: x}",
        "{extra_headers: {Authorization: x}}",
        "{extra_headers: {Proxy-Authorization: x}}",
        "{extra_headers: {x-api-key: x}}",
        "{extra_headers: {Api-Key: x}}",
        "{model_kwargs: {token: hf_x}}",
        "{hf_token: x}",
        "{extra_body: {vertex: {clientSecret: x}}}",
        "{extra_query: {apiKey: x}}",
        "{aws_secret_access_key: x}",
        "{extra_body: {items: [{password: x}]}}",
        "{extra_headers: {X-Whatever: 'Bearer abcdefgh12345'}}",
        "{user: sk-abcdefghijklmnop1234}",
    ],
)
def test_a_credential_in_teacher_options_is_refused(tmp_path, options):
    path = write(tmp_path, f"name: t\nteacher: {{backend: openai, options: {options}}}\nstages: [generate]\n")
    with pytest.raises(ConfigError) as info:
        load_pipeline(path)
    assert info.value.key == "teacher.options" and "api_key_env" in str(info.value)


def test_options_about_tokens_are_not_credentials(tmp_path):
    options = (
        "{segment_tokens: 8, max_new_tokens: 9, pad_token_id: 0, eos_token_id: [1, 2], token_healing: false, "
        "use_auth_token: false, prompt_cache_key: bucket-1, extra_headers: {X-Request-Source: synthdistill}}"
    )
    path = write(tmp_path, f"name: t\nteacher: {{options: {options}}}\nstages: [generate]\n")
    assert load_pipeline(path).config.teacher.options["pad_token_id"] == 0


@pytest.mark.parametrize("name", ["..", ".", "../x", "a/b", "a\\\\b", "x y"])
def test_a_run_name_is_a_plain_name(tmp_path, name):
    path = write(tmp_path, f'name: "{name}"\nstages: [generate]\n')
    with pytest.raises(ConfigError) as info:
        load_pipeline(path)
    assert info.value.key == "name" and "not a plain name" in str(info.value)
