"""The sandbox as a specification: good programs give their answer; hostile ones are stopped with the reason.

Each hostile program runs against a folder of the test's that it tries to reach, and the tests assert on
the file system afterwards: that folder is as it was, and the sandbox's own temporary folder is gone. The
kernel's layers are also tested alone, with the audit hook off, where the machine has them.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from synthdistill.sandbox import Limits, Result, run_program, run_programs

FAST = Limits(cpu_seconds=1, wall_seconds=10)


@pytest.fixture
def places(tmp_path: Path) -> tuple[Path, Path]:
    """(the sandbox's temporary root, a folder outside it holding a file the programs go after)."""
    root, outside = tmp_path / "sandboxes", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "keep.txt").write_text("precious")
    return root, outside


def test_a_good_program_gives_the_last_line_it_prints(places):
    root, _ = places
    program = "import statistics\nfrom fractions import Fraction\nprint('working')\nprint(Fraction(84, 2))\n"
    result = run_program(program, FAST, tmp_root=root)
    assert (result.ok, result.status, result.answer, result.reason) == (True, "ok", "42", "")
    assert result.stdout == "working\n42\n"
    assert list(root.iterdir()) == []


def test_a_program_may_write_and_read_its_own_folder(places):
    root, _ = places
    program = "with open('note.txt', 'w') as f:\n    f.write('7')\nprint(int(open('note.txt').read()) * 6)"
    assert run_program(program, FAST, tmp_root=root).answer == "42"
    assert list(root.iterdir()) == []


HOSTILE = [
    # (case, program, status, words the reason must hold)
    ("infinite loop", "while True:\n    pass", ("cpu", "timeout"), ["killed"]),
    ("fork bomb", "import os\nwhile True:\n    os.fork()", ("blocked",), ["import of os"]),
    (
        "fork bomb through an allowed module",
        "import random\nwhile True:\n    random._os.fork()",
        ("blocked",),
        ["os.fork"],
    ),
    ("read /etc/passwd", "print(open('/etc/passwd').read())", ("blocked",), ["read of /etc/passwd"]),
    (
        "open a socket",
        "import socket\ns = socket.socket()\ns.connect(('127.0.0.1', 9))\nprint(1)",
        ("blocked",),
        ["import of socket"],
    ),
    (
        "open a socket past the import check",
        "s = __import__('socket', {'__name__': 'statistics'})\nprint(s.socket())",
        ("blocked",),
        ["import of socket"],
    ),
    ("allocate 1 GB", "data = bytearray(1024 ** 3)\nprint(len(data))", ("memory",), ["256 MiB"]),
    ("print 100 MB", "print('x' * 100_000_000)", ("output",), ["printed more than 65536 bytes"]),
    ("print 100 MB line by line", "for _ in range(10 ** 8):\n    print('x')", ("output",), ["printed more"]),
    ("write outside", "open('{outside}/evil.txt', 'w').write('x')\nprint(1)", ("blocked",), ["write to"]),
    ("append outside", "open('{outside}/keep.txt', 'a').write('x')\nprint(1)", ("blocked",), ["keep.txt"]),
    ("import os", "import os\nprint(os.getcwd())", ("blocked",), ["import of os", "allowed: "]),
    (
        "import subprocess",
        "import subprocess\nprint(subprocess.run(['id']))",
        ("blocked",),
        ["import of subprocess"],
    ),
    ("relative import", "from . import secrets\nprint(1)", ("blocked",), ["import of"]),
    ("raise", "x = 1\ny = 0\nprint(x / y)", ("raised",), ["ZeroDivisionError", "line 3"]),
    ("syntax error", "print((1 + 2)", ("raised",), ["SyntaxError", "line 1"]),
    ("print None", "print(None)", ("no_answer",), ["non-answer", "None"]),
    ("print nothing", "answer = 42", ("no_answer",), ["printed nothing"]),
    ("exit with a status", "raise SystemExit(3)", ("raised",), ["status 3"]),
]


@pytest.mark.parametrize(("case", "program", "statuses", "words"), HOSTILE, ids=[c[0] for c in HOSTILE])
def test_a_hostile_or_broken_program_is_stopped_with_its_reason_and_touches_nothing(
    places, case, program, statuses, words
):
    root, outside = places
    before = _snapshot(outside)
    result = run_program(program.replace("{outside}", str(outside)), FAST, tmp_root=root)
    assert result.status in statuses, result
    assert not result.ok and result.answer is None
    for word in words:
        assert word in result.reason, (word, result.reason)
    assert _snapshot(outside) == before
    assert list(root.iterdir()) == [], "the sandbox's folder must be removed"


def test_a_program_that_sleeps_past_the_wall_clock_is_killed_with_its_group(places):
    root, _ = places
    # time is not on the allow-list of programs; let it be, to sleep without using CPU.
    limits = Limits(cpu_seconds=5, wall_seconds=0.5, modules=["time"])
    started = time.monotonic()
    result = run_program("import time\ntime.sleep(30)\nprint(1)", limits, tmp_root=root)
    assert result.status == "timeout" and "0.5 s (wall clock)" in result.reason
    assert time.monotonic() - started < 5
    assert list(root.iterdir()) == []


def test_a_program_that_closes_its_output_and_sleeps_is_killed_at_the_wall_clock_too(places):
    root, _ = places
    limits = Limits(cpu_seconds=5, wall_seconds=0.5, modules=["time"])
    program = "import time\nopen(1, 'w').close()\nopen(2, 'w').close()\ntime.sleep(30)"
    result = run_program(program, limits, tmp_root=root)
    assert result.status == "timeout", result
    assert list(root.iterdir()) == []


def test_the_program_sees_none_of_the_callers_environment(places, monkeypatch):
    root, _ = places
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    limits = FAST.model_copy(update={"modules": ["os"]})
    result = run_program("import os\nprint(sorted(os.environ))", limits, tmp_root=root)
    assert result.answer == "['HOME', 'LANG', 'TMPDIR']"


def test_a_program_over_the_length_limit_is_not_run(places):
    root, _ = places
    result = run_program("print(1)\n" * 10, Limits(max_program_chars=50), tmp_root=root)
    assert result.status == "blocked" and "over the limit of 50" in result.reason
    assert list(root.iterdir()) == []


def test_programs_run_side_by_side_in_order_and_one_failing_stops_no_other(places):
    root, _ = places
    programs = [f"print({i} * {i})" if i % 3 else "import os" for i in range(9)]
    results = run_programs(programs, FAST, workers=3, tmp_root=root)
    assert [r.answer for r in results] == [None if i % 3 == 0 else str(i * i) for i in range(9)]
    assert [r.status for r in results[::3]] == ["blocked"] * 3
    assert run_programs([], FAST) == []
    assert list(root.iterdir()) == []


def test_the_result_names_the_layers_that_held(places):
    root, _ = places
    layers = run_program("print(1)", FAST, tmp_root=root).layers
    assert {"rlimits", "audit"} <= set(layers)
    assert "audit" not in run_program("print(1)", Limits(audit_hook=False), tmp_root=root).layers


KERNEL = [
    ("fork", "import os\nos.fork()\nprint(1)", "seccomp"),
    ("thread", "import threading\nthreading.Thread(target=print).start()\nprint(1)", "seccomp"),
    ("exec", "import os\nos.execv('/bin/sh', ['sh', '-c', 'echo 1'])", "seccomp"),
    ("socket", "import socket\nsocket.socket(socket.AF_UNIX)\nprint(1)", "seccomp"),
    ("read /etc/passwd", "print(open('/etc/passwd').read())", "landlock"),
    ("write outside", "open('{outside}/evil.txt', 'w').write('x')\nprint(1)", "landlock"),
    ("remove outside", "import os\nos.remove('{outside}/keep.txt')\nprint(1)", "landlock"),
]


@pytest.mark.parametrize(("case", "program", "layer"), KERNEL, ids=[c[0] for c in KERNEL])
def test_with_the_audit_hook_off_the_kernel_still_stops_the_program(places, case, program, layer):
    root, outside = places
    limits = Limits(cpu_seconds=1, audit_hook=False, modules=[])
    if layer not in run_program("print(1)", limits, tmp_root=root).layers:
        pytest.skip(f"this machine does not give the sandbox {layer}")
    before = _snapshot(outside)
    result = run_program(program.replace("{outside}", str(outside)), limits, tmp_root=root)
    assert result.status == "raised", result
    assert "PermissionError" in result.reason or "can't start new thread" in result.reason
    assert _snapshot(outside) == before
    assert list(root.iterdir()) == []


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_a_result_is_ok_only_with_an_answer():
    assert Result("ok", "", "1", "1\n", "", 0.1).ok
    assert not Result("no_answer", "printed nothing", None, "", "", 0.1).ok
