"""Batch jobs (OpenAI-style /v1/files and /v1/batches) against the scripted server's batch endpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from synthdistill.config import BatchAPIConfig, TeacherConfig
from synthdistill.runs.folder import read_records
from synthdistill.teachers.base import Request
from synthdistill.teachers.cache import CallCache
from synthdistill.teachers.engine import Engine
from synthdistill.teachers.openai import OpenAIBackend
from synthdistill.testing import ScriptedServer

FAST = BatchAPIConfig(max_requests=10, flush_s=0.2, poll_s=0.05)


def batch_engine(url: str, tmp_path: Path, journal: Path | None = None) -> Engine:
    teacher = TeacherConfig(backend="openai", model="scripted", api_base=url, batch_api=FAST)
    backend = OpenAIBackend(teacher)
    if journal is not None:
        backend.use_run_folder(journal)
    return Engine(
        backend, CallCache(tmp_path / "calls.sqlite"), max_concurrency=20, timeout_s=None, backoff_base_s=0.01
    )


def requests(count: int) -> list[tuple[int, Request]]:
    return [(i, Request(messages=[{"role": "user", "content": f"question {i}"}], n=2)) for i in range(count)]


def test_requests_go_out_as_batch_jobs_and_come_back_in_order(tmp_path):
    with ScriptedServer(batch_delay_s=0.1) as server:
        engine = batch_engine(server.url, tmp_path)
        results = list(engine.map(requests(25)))
        engine.close()
        stats = server.stats
        with ScriptedServer() as online:
            engine2 = Engine(
                OpenAIBackend(TeacherConfig(backend="openai", model="scripted", api_base=online.url)),
                CallCache(tmp_path / "online.sqlite"),
            )
            expected = list(engine2.map(requests(25)))
            engine2.close()
    assert [p for p, _ in results] == list(range(25))
    assert [[s.text for s in samples] for _, samples in results] == [
        [s.text for s in samples] for _, samples in expected
    ]
    assert stats.by_path.get("/v1/chat/completions", 0) == 0
    assert stats.by_path["/v1/batches"] == 3  # 10 + 10 + the 5 sent after flush_s without a new request
    assert engine.stats.calls == 25 and engine.stats.completion_tokens > 0


def test_failed_lines_are_asked_again_in_a_later_job(tmp_path):
    with ScriptedServer(batch_delay_s=0.05, batch_line_error_rate=0.3, seed=3) as server:
        engine = batch_engine(server.url, tmp_path)
        results = list(engine.map(requests(20)))
        engine.close()
        jobs = server.stats.by_path["/v1/batches"]
    assert all(len(samples) == 2 and not any(s.error for s in samples) for _, samples in results)
    assert engine.stats.retries > 0 and jobs > 2


PIPELINE = """
name: b
seed: 0
teacher:
  backend: openai
  model: scripted
  api_base: "{url}"
  batch_api: {{max_requests: 100, flush_s: 0.2, poll_s: 0.1}}
data: {{source: builtin:arith, split: {{train: 12, test: 2}}}}
stages:
  - generate: {{template: cot_rationale.j2, n: 2, temperature: 0.7}}
"""


def test_a_run_killed_while_its_job_runs_polls_the_same_job_after_a_restart(tmp_path):
    (tmp_path / "pipelines").mkdir()
    env = {**os.environ, "SYNTHDISTILL_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "synthdistill", "run", "pipelines/b.yaml"]
    with ScriptedServer(batch_delay_s=4.0) as server:
        (tmp_path / "pipelines" / "b.yaml").write_text(PIPELINE.format(url=server.url))
        child = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE)
        journal = tmp_path / "outputs" / "b" / "batches.jsonl"
        deadline = time.monotonic() + 60
        # Killed once the job is created and journaled, while the server still works on it.
        while not (journal.exists() and "submitted" in journal.read_text()) and time.monotonic() < deadline:
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait()
        submitted = [json.loads(line) for line in journal.read_text().splitlines()]
        assert [e["event"] for e in submitted] == ["submitted"]

        rerun = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        stats = server.stats
    # The restarted run uploaded and submitted nothing new: it waited for the job it had paid for.
    assert stats.by_path["/v1/files"] == 1 and stats.by_path["/v1/batches"] == 1
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [e["event"] for e in events] == ["submitted", "finished"] and events[1]["status"] == "completed"
    records = list(read_records(tmp_path / "outputs" / "b" / "01-generate" / "records.jsonl"))
    assert len(records) == 12 and all(len(r.samples) == 2 for r in records)
