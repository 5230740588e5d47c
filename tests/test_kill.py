"""Kill -9 mid-run, again and again, then resume: nothing is lost, nothing doubled, nothing paid twice.

The pipeline runs in a child process (`synthdistill run`) against the scripted server in this one, so
the kills are real SIGKILLs at arbitrary moments: while requests are in flight, while a batch of
records is being written, while the manifest is replaced. Kill points come from a seeded generator and
are taken only after the server has seen a given number of new requests, so each kill lands in work.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthdistill.runs.folder import read_records
from synthdistill.testing import ScriptedServer

PIPELINE = """
name: k
seed: 0
teacher: {{backend: openai, model: scripted, api_base: "{url}", max_concurrency: 8, max_retries: 2}}
data: {{source: builtin:arith, split: {{train: 80, test: 4}}}}
stages:
  - generate: {{template: cot_rationale.j2, n: 2, temperature: 0.7}}
  - self_consistency: {{keep: all}}
  - filter: {{critics: [{{length: {{max_words: 40}}}}]}}
"""
CHAT = "/v1/chat/completions"


def synthdistill(project: Path, home: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SYNTHDISTILL_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "synthdistill", "run", "pipelines/k.yaml"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stage_contents(project: Path) -> dict[str, list[tuple[str, str | None, bool]]]:
    contents = {}
    for path in sorted((project / "outputs" / "k").glob("*/records.jsonl")):
        records = list(read_records(path))
        contents[path.parent.name] = sorted((r.id, r.rationale, r.kept) for r in records)
    return contents


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pipelines").mkdir()
    return tmp_path


@pytest.mark.slow
def test_kill_9_ten_times_mid_run_then_resume_loses_nothing(tmp_path: Path, project: Path) -> None:
    with ScriptedServer(latency=0.03) as server:
        (project / "pipelines" / "k.yaml").write_text(PIPELINE.format(url=server.url))
        # The uninterrupted run, in a project and cache of its own.
        reference = tmp_path / "reference"
        (reference / "pipelines").mkdir(parents=True)
        (reference / "pipelines" / "k.yaml").write_text(PIPELINE.format(url=server.url))
        done = synthdistill(reference, tmp_path / "home-reference")
        assert done.wait(timeout=300) == 0, done.stderr.read() if done.stderr else ""
        reference_calls = server.stats.by_path[CHAT]
        expected = stage_contents(reference)
        assert reference_calls == 80 and sum(len(v) for v in expected.values()) > 0

        server.reset_stats()
        rng = random.Random(7)
        in_flight_at_kills = 0
        kills = 0
        home = tmp_path / "home"
        while kills < 10:
            seen = server.stats.by_path.get(CHAT, 0)
            target = seen + rng.randint(2, 7)
            child = synthdistill(project, home)
            while child.poll() is None and server.stats.by_path.get(CHAT, 0) < target:
                time.sleep(0.002)
            if child.poll() is not None:
                break  # it finished before the kill point: nothing left to interrupt
            in_flight_at_kills += server.stats.in_flight  # the server's view, for the failure message
            child.send_signal(signal.SIGKILL)
            child.wait()
            kills += 1
        assert kills >= 5, "too few kills landed in work; lower the kill points"

        final = synthdistill(project, home)
        assert final.wait(timeout=300) == 0, final.stderr.read() if final.stderr else ""
        calls = server.stats.by_path[CHAT]

    assert stage_contents(project) == expected
    for stage, records in stage_contents(project).items():
        assert len({record_id for record_id, _, _ in records}) == len(records), f"duplicates in {stage}"
    # A call lost to a kill is one that was in flight at the kill (at most max_concurrency, 8): its answer
    # never reached the cache. Nothing else is paid twice.
    assert reference_calls <= calls <= reference_calls + kills * 8, (calls, in_flight_at_kills)
