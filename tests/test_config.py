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
        ("name: t\nstages: [nope]\n", "stages[0]", "valid stages: adversarial, evaluate, evolve"),
        ("name: t\nstages: [{filter: {critics: [nope]}}]\n", "stages[0].filter.critics", "valid critics:"),
        ("name: t\nteacher: {api_key: sk-x}\nstages: [generate]\n", "teacher", "api_key_env"),
        ("stages: [generate]\n", "name", "add it"),
        ("name: t\nstages: [generate\n", "YAML syntax error at line", "fix the YAML"),
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
