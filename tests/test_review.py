"""Review decisions, the review index, the review server's API, and decisions flowing into later runs.

The run under review is made for real by the pipeline against the scripted server (the `review_run`
fixture in conftest.py); the server is a real uvicorn on 127.0.0.1 spoken to over HTTP.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from synthdistill.cli import main
from synthdistill.config import load_pipeline
from synthdistill.errors import RunError
from synthdistill.pipeline import RunOptions, run_pipeline
from synthdistill.records import Record, Verdict
from synthdistill.review.index import INDEX_FILE, ReviewIndex
from synthdistill.review.query import Filters, GroupQuery
from synthdistill.review.server import TOKEN_HEADER, ReviewServer
from synthdistill.runs.decisions import (
    DecisionEntry,
    DecisionLog,
    apply_decisions,
    decisions_digest,
    load_decisions,
)
from synthdistill.runs.folder import Manifest, RecordWriter, RunFolder, StageManifest, read_records
from synthdistill.runs.view import open_run


def filter_records(run: Path) -> list[Record]:
    return list(read_records(run / "03-filter" / "records.jsonl"))


def rerun(path: Path):
    return run_pipeline(load_pipeline(path), RunOptions())


# ---- decisions


def test_later_decisions_win_and_every_one_stays_in_the_history(tmp_path):
    log = DecisionLog(tmp_path)
    log.append(DecisionEntry(record_id="a", action="edit", answer="1"))
    log.append(DecisionEntry(record_id="a", action="edit", answer="2", rationale="because"))
    log.append(DecisionEntry(record_id="a", action="reject", reason="off"))
    log.append(DecisionEntry(record_id="a", action="accept"))
    log.append(DecisionEntry(record_id="b", action="reject", reason="bad"))
    decisions = load_decisions(tmp_path)
    a = decisions["a"]
    assert (a.status, a.answer, a.rationale, a.reason) == ("accepted", "2", "because", "")
    assert [h.action for h in a.history] == ["edit", "edit", "reject", "accept"]
    assert decisions["b"].status == "rejected" and decisions["b"].reason == "bad"
    lines = [json.loads(line) for line in (tmp_path / "review.jsonl").read_text().splitlines()]
    assert len(lines) == 5
    assert set(lines[0]) == {"record_id", "stage", "action", "reason", "answer", "rationale", "time"}


def test_a_torn_last_line_is_ignored_and_cut_before_the_next_append(tmp_path):
    DecisionLog(tmp_path).append(DecisionEntry(record_id="a", action="reject"))
    with (tmp_path / "review.jsonl").open("a") as handle:
        handle.write('{"record_id": "b", "act')  # a kill mid-write
    assert set(load_decisions(tmp_path)) == {"a"}
    DecisionLog(tmp_path).append(DecisionEntry(record_id="c", action="accept"))
    assert set(load_decisions(tmp_path)) == {"a", "c"}


def test_a_broken_line_is_a_one_line_error_naming_file_line_and_field(tmp_path):
    (tmp_path / "review.jsonl").write_text('{"record_id": "a", "action": "approve"}\n')
    with pytest.raises(RunError, match=r"review.jsonl:1: action: .*fix or delete that line"):
        load_decisions(tmp_path)


def test_an_edit_without_new_text_is_refused(tmp_path):
    with pytest.raises(RunError, match="needs a new answer or rationale"):
        DecisionLog(tmp_path).append(DecisionEntry(record_id="a", action="edit"))


def test_apply_rejects_readmits_and_edits():
    dropped = Record(
        id="d",
        input={"question": "q"},
        answer="1",
        kept=False,
        dropped_by="answer_match",
        verdicts={"answer_match": Verdict(passed=False)},
    )
    kept = Record(id="k", input={"question": "q"}, answer="2", rationale="r")
    log = {}
    from synthdistill.runs.decisions import fold

    fold(log, DecisionEntry(record_id="d", action="accept"))
    fold(log, DecisionEntry(record_id="k", action="edit", rationale="better"))
    fold(log, DecisionEntry(record_id="k", action="reject", reason="sloppy"))
    fold(log, DecisionEntry(record_id="e", action="reject", reason="wrong"))
    fold(log, DecisionEntry(record_id="e", action="edit", answer="3"))
    edited = Record(id="e", input={"question": "q"}, answer="2", kept=False, dropped_by="answer_match")
    d, k, e = apply_decisions([dropped, kept, edited], log)
    # An edit after a reject accepts: the reviewer has made the record right.
    assert e.kept and e.answer == "3" and log["e"].reason == "wrong"
    assert d.kept and d.dropped_by is None and d.verdicts["review"].passed
    assert not k.kept and k.dropped_by == "review" and k.verdicts["review"].reason == "sloppy"
    assert k.rationale == "better" and k.answer == "2"
    assert decisions_digest({}) == "" and decisions_digest(log) != ""


# ---- index


def test_index_filters_by_stage_kept_critic_agreement_and_text(review_run):
    _, run, _ = review_run
    index, build = ReviewIndex.open(open_run(run))
    assert build.stages_indexed == ["01-generate", "02-self_consistency", "03-filter"]
    assert build.records_indexed == 8 + 24 + 24
    total, _ = index.query(Filters(stage="03-filter"))
    assert total == 24
    assert index.query(Filters(stage="03-filter", kept=True))[0] == 8
    failed, rows = index.query(Filters(stage="03-filter", critic="answer_match", verdict="fail", limit=5))
    assert failed == 16 and len(rows) == 5
    assert all(not row["record"]["verdicts"]["answer_match"]["passed"] for row in rows)
    found, rows = index.query(Filters(q="onerror"))
    assert found == 3 + 3 + 1  # the first problem's generate record, its 3 children, and those 3 again
    assert index.query(Filters(stage="03-filter", min_agreement=0.5))[0] == 0
    _, rows = index.query(Filters(stage="03-filter", sort="score:answer_match", order="desc", limit=8))
    assert all(row["record"]["verdicts"]["answer_match"]["score"] == 1.0 for row in rows)
    stats = index.stats("03-filter")
    assert stats["critics"] == [{"critic": "answer_match", "judged": 24, "passed": 8}]
    assert sum(stats["agreement"]["counts"]) == 24
    index.close()


def test_index_is_kept_and_only_a_changed_stage_file_is_indexed_again(review_run):
    _, run, _ = review_run
    ReviewIndex.open(open_run(run))[0].close()
    index, build = ReviewIndex.open(open_run(run))
    assert build.stages_indexed == [] and index.query(Filters())[0] == 56
    index.close()
    path = run / "03-filter" / "records.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:10]))
    index, build = ReviewIndex.open(open_run(run))
    assert build.stages_indexed == ["03-filter"]
    assert index.query(Filters(stage="03-filter"))[0] == 10
    assert index.query(Filters(q="onerror"))[0] == 3 + 3 + 1
    index.close()


def test_an_index_of_an_older_schema_is_built_again_whole(review_run):
    _, run, _ = review_run
    ReviewIndex.open(open_run(run))[0].close()
    import sqlite3

    with sqlite3.connect(run / INDEX_FILE) as db:
        db.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
    index, build = ReviewIndex.open(open_run(run))
    assert build.stages_indexed == ["01-generate", "02-self_consistency", "03-filter"]
    assert index.group(GroupQuery(record=filter_records(run)[0].id))["total"] == 3
    index.close()


def test_a_group_is_one_question_else_one_parent_else_one_input(tmp_path):
    def record(id, input, parent=None):
        return Record(id=id, input=input, parent_id=parent)

    records = [
        record("q1", {"question": "same?"}, parent="p1"),
        record("x1", {"instruction": "a"}, parent="p1"),
        record("q2", {"question": "same?"}, parent="p2"),  # another parent, the same question
        record("x2", {"instruction": "b"}, parent="p1"),  # the same parent, no question
        record("y1", {"instruction": "a"}),
        record("y2", {"instruction": "a"}),  # no question, no parent: the same input
    ]
    folder = RunFolder(tmp_path / "run")
    with RecordWriter(folder.stage_dir("01-generate") / "records.jsonl") as writer:
        writer.write(records)
    stage = StageManifest(name="generate", folder="01-generate", status="done", records_out=6)
    folder.write_manifest(Manifest(name="run", pipeline="p.yaml", status="done", stages=[stage]))
    index, _ = ReviewIndex.open(open_run(tmp_path / "run"))

    def members(record_id):
        return [row["record"]["id"] for row in index.group(GroupQuery(record=record_id))["records"]]

    assert members("q2") == ["q1", "q2"]
    assert members("x1") == ["x1", "x2"]
    assert members("y2") == ["y1", "y2"]
    index.close()


# ---- server


@pytest.fixture
def served(review_run):
    path, run, _ = review_run
    with ReviewServer(run) as server:
        yield path, run, server


def test_api_pages_filters_and_saves_decisions_that_survive_a_restart(served):
    _, run, server = served
    client = httpx.Client(base_url=server.url)
    meta = client.get("/api/meta").json()
    assert meta["default_stage"] == "03-filter" and meta["critics"] == ["answer_match"]
    page = client.get("/api/records", params={"stage": "03-filter", "kept": "false", "limit": 4}).json()
    assert page["total"] == 16 and len(page["records"]) == 4
    target = page["records"][0]["record"]["id"]
    body = {"record_id": target, "stage": "03-filter", "action": "accept", "reason": "close enough"}
    saved = client.post("/api/decisions", json=body, headers={TOKEN_HEADER: server.token})
    assert saved.status_code == 200 and saved.json()["status"] == "accepted"
    # Written at once: a server killed now loses nothing.
    assert json.loads((run / "review.jsonl").read_text())["record_id"] == target
    accepted = client.get("/api/records", params={"decision": "accepted", "stage": "03-filter"}).json()
    assert accepted["total"] == 1 and accepted["records"][0]["decision"]["reason"] == "close enough"
    server.stop()
    with ReviewServer(run) as again:
        page = httpx.get(f"{again.url}api/records", params={"decision": "accepted"}).json()
        assert page["records"][0]["record"]["id"] == target


def test_group_endpoint_returns_a_questions_samples_in_file_order_with_kept_and_verdicts(served):
    _, run, server = served
    client = httpx.Client(base_url=server.url)
    records = filter_records(run)
    question = records[4].input["question"]
    expected = [r for r in records if r.input["question"] == question]
    assert len(expected) == 3  # self_consistency hands on each of the 3 rationales, the filter keeps one
    anchor = expected[1]
    group = client.get("/api/group", params={"record": anchor.id, "stage": "03-filter"}).json()
    assert (group["stage"], group["record"], group["total"], group["kept"]) == ("03-filter", anchor.id, 3, 1)
    assert group["position"] == 1 and (group["offset"], group["limit"]) == (0, 50)
    rows = group["records"]
    assert [row["record"]["id"] for row in rows] == [r.id for r in expected]
    assert [row["line"] for row in rows] == sorted(row["line"] for row in rows)
    assert [row["record"]["kept"] for row in rows] == [r.kept for r in expected]
    assert sum(r.kept for r in expected) == 1
    assert [row["record"]["verdicts"]["answer_match"]["passed"] for row in rows] == [r.kept for r in expected]
    assert [row["record"]["agreement"] for row in rows] == [r.agreement for r in expected]
    assert {row["record"]["parent_id"] for row in rows} == {anchor.parent_id}
    assert all(row["decision"] is None for row in rows)
    # Without a stage: the last stage that holds the record; a stage before it has the same samples.
    assert client.get("/api/group", params={"record": anchor.id}).json()["stage"] == "03-filter"
    earlier = client.get("/api/group", params={"record": anchor.id, "stage": "02-self_consistency"}).json()
    assert [row["record"]["id"] for row in earlier["records"]] == [r.id for r in expected]
    assert all(row["record"]["verdicts"] == {} for row in earlier["records"])
    # generate: one record of the question, holding all its samples.
    generated = client.get("/api/group", params={"record": anchor.parent_id}).json()
    assert generated["stage"] == "01-generate" and generated["total"] == 1
    assert len(generated["records"][0]["record"]["samples"]) == 3

    # A decision made for one sample (the same endpoint the list uses) comes back in its group.
    saved = client.post(
        "/api/decisions",
        json={"record_id": expected[2].id, "stage": "03-filter", "action": "accept"},
        headers={TOKEN_HEADER: server.token},
    )
    assert saved.status_code == 200
    rows = client.get("/api/group", params={"record": anchor.id, "stage": "03-filter"}).json()["records"]
    assert [row["decision"] and row["decision"]["status"] for row in rows] == [None, None, "accepted"]


def test_group_endpoint_pages_like_the_list_and_refuses_bad_queries(served):
    _, run, server = served
    client = httpx.Client(base_url=server.url)
    record = filter_records(run)[0]
    pages = [
        client.get("/api/group", params={"record": record.id, "offset": offset, "limit": 2}).json()
        for offset in (0, 2, 4)
    ]
    assert [page["total"] for page in pages] == [3, 3, 3]
    assert [len(page["records"]) for page in pages] == [2, 1, 0]
    assert [page["offset"] for page in pages] == [0, 2, 4]
    whole = client.get("/api/group", params={"record": record.id}).json()["records"]
    assert [row["record"]["id"] for page in pages for row in page["records"]] == [
        row["record"]["id"] for row in whole
    ]
    missing = client.get("/api/group", params={"record": "nope"})
    assert missing.status_code == 404 and "nope" in missing.json()["error"]
    wrong_stage = client.get("/api/group", params={"record": record.id, "stage": "01-generate"})
    assert wrong_stage.status_code == 404 and "01-generate" in wrong_stage.json()["error"]
    for params in ({}, {"record": record.id, "limit": 201}, {"record": record.id, "order": "desc"}):
        bad = client.get("/api/group", params=params)
        assert bad.status_code == 400 and bad.json()["error"]


def test_writes_need_the_session_token_and_the_same_origin(served):
    _, run, server = served
    record_id = filter_records(run)[0].id
    body = {"record_id": record_id, "action": "reject"}
    assert httpx.post(f"{server.url}api/decisions", json=body).status_code == 403
    wrong = httpx.post(f"{server.url}api/decisions", json=body, headers={TOKEN_HEADER: "x" * 32})
    assert wrong.status_code == 403
    cross = httpx.post(
        f"{server.url}api/decisions",
        json=body,
        headers={TOKEN_HEADER: server.token, "Origin": "http://evil.example"},
    )
    assert cross.status_code == 403
    rebound = httpx.get(f"{server.url}api/meta", headers={"Host": "evil.example"})
    assert rebound.status_code == 400  # a DNS-rebinding page reaches us under its own name
    assert not (run / "review.jsonl").exists()
    unknown = httpx.post(
        f"{server.url}api/decisions",
        json={"record_id": "nope", "action": "accept"},
        headers={TOKEN_HEADER: server.token},
    )
    assert unknown.status_code == 404
    bad = httpx.get(f"{server.url}api/records", params={"sort": "rm -rf"})
    assert bad.status_code == 400 and "sort" in bad.json()["error"]
    page = httpx.get(server.url)
    assert server.token in page.text and "script-src 'self'" in page.headers["content-security-policy"]


def test_another_host_needs_a_token_for_every_request(review_run):
    _, run, _ = review_run
    with pytest.raises(Exception, match="--token"):
        ReviewServer(run, host="0.0.0.0")
    token = "s3cret-token-0123456789"
    with ReviewServer(run, host="0.0.0.0", token=token) as server:
        base = f"http://127.0.0.1:{server.port}/"
        assert httpx.get(f"{base}api/meta").status_code == 403
        assert httpx.get(base).status_code == 403
        assert httpx.get(f"{base}api/meta", headers={TOKEN_HEADER: token}).status_code == 200
        record_id = filter_records(run)[0].id
        assert httpx.get(f"{base}api/group", params={"record": record_id}).status_code == 403
        wrong = httpx.get(f"{base}api/group", params={"record": record_id}, headers={TOKEN_HEADER: "x" * 32})
        assert wrong.status_code == 403
        group = httpx.get(f"{base}api/group", params={"record": record_id}, headers={TOKEN_HEADER: token})
        assert group.status_code == 200 and group.json()["total"] == 3
        assert "script-src 'self'" in group.headers["content-security-policy"]
        by_address = httpx.get(f"{base}api/group", params={"record": record_id, "token": token})
        assert by_address.status_code == 200
        assert token in httpx.get(f"{base}?token={token}").text


# ---- decisions flow into the pipeline


def test_rerun_honours_reject_edit_and_accept_without_calling_the_teacher(review_run):
    path, run, server = review_run
    records = filter_records(run)
    kept = [r for r in records if r.kept]
    dropped = [r for r in records if not r.kept]
    log = DecisionLog(run)
    log.append(DecisionEntry(record_id=kept[0].id, stage="03-filter", action="reject", reason="sloppy"))
    log.append(
        DecisionEntry(
            record_id=kept[1].id, stage="03-filter", action="edit", answer="41", rationale="Edited by hand."
        )
    )
    log.append(DecisionEntry(record_id=dropped[0].id, stage="03-filter", action="accept"))
    before = server.stats.requests
    manifest = rerun(path)
    assert server.stats.requests == before
    assert [s.status for s in manifest.stages] == ["skipped", "done", "done"]
    assert manifest.stages[1].reason == "review decisions changed"
    from datasets import load_from_disk

    dataset = load_from_disk(str(run / "dataset"))
    ids = set(dataset["id"])
    assert kept[0].id not in ids and dropped[0].id in ids and len(ids) == 8
    row = dataset[dataset["id"].index(kept[1].id)]
    assert (row["answer"], row["rationale"]) == ("41", "Edited by hand.")
    # A rejected record is not handed to the filter at all on the re-run; the accepted one is dropped by
    # the critic again in the stage file, and re-admitted by the review for what comes after.
    assert kept[0].id not in {r.id for r in filter_records(run)}
    # Nothing new decided: everything is skipped again.
    assert [s.status for s in rerun(path).stages] == ["skipped"] * 3


def test_rejecting_a_generate_record_removes_its_children_downstream(review_run):
    path, run, _ = review_run
    parent = next(read_records(run / "01-generate" / "records.jsonl"))
    DecisionLog(run).append(DecisionEntry(record_id=parent.id, stage="01-generate", action="reject"))
    rerun(path)
    assert parent.id not in {r.parent_id for r in read_records(run / "02-self_consistency" / "records.jsonl")}
    assert len(filter_records(run)) == 21


# ---- command line


@pytest.mark.parametrize("command", ["review", "inspect", "export"])
def test_a_missing_run_folder_is_one_line_and_exit_2(capfd, tmp_path, command):
    code = main([command, str(tmp_path / "nope"), *(["--no-open"] if command == "review" else [])])
    _, err = capfd.readouterr()
    assert code == 2
    assert err.count("\n") == 1 and "does not exist" in err and "outputs/<name>" in err


def test_a_folder_without_manifest_is_not_a_run(capfd, tmp_path):
    code = main(["inspect", str(tmp_path)])
    _, err = capfd.readouterr()
    assert code == 2 and "is not a run folder (no manifest.json)" in err


def test_review_on_another_host_without_token_is_refused(capfd, review_run):
    _, run, _ = review_run
    os.environ.pop("SYNTHDISTILL_REVIEW_TOKEN", None)
    capfd.readouterr()
    code = main(["review", str(run), "--host", "0.0.0.0", "--no-open"])
    _, err = capfd.readouterr()
    assert code == 2 and "--token" in err and err.count("\n") == 1


def test_review_help_names_its_options(capfd):
    code = main(["review", "--help"])
    out, _ = capfd.readouterr()
    assert code == 0
    for word in ("--host", "--port", "--no-open", "--token", "local web page"):
        assert word in out
