"""The public Python API: the names exported, and that importing the package stays light."""

import subprocess
import sys
from pathlib import Path

import synthdistill


def test_all_is_sorted_and_pinned():
    assert synthdistill.__all__ == [
        "CallCache", "ConfigError", "CriticError", "DataError", "Engine", "Manifest", "Pipeline", "Record",
        "RunError", "Sample", "StageError", "SynthdistillError", "TeacherError", "TemplateError", "Verdict",
        "load_pipeline", "run",
    ]  # fmt: skip
    for name in synthdistill.__all__:
        assert getattr(synthdistill, name) is not None


def test_validate_imports_no_heavy_library():
    code = (
        "import sys; from synthdistill.cli import main; main(['validate', 'pipelines/cot.yaml']); "
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'datasets', 'litellm') if m in sys.modules]; "
        "print('HEAVY', heavy)"
    )
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo
    )
    assert "ok (5 stages" in result.stdout
    assert "HEAVY []" in result.stdout
