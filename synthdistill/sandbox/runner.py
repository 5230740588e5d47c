"""Run short Python programs in a sandbox, one fresh process each, several at once; never raise.

Each program gets its own `python -I -S -B` process (child.py) in a new session, whose working folder is
a new temporary folder, with an environment of three variables and no key of the caller's. The parent
holds the limits that a program cannot touch: a wall-clock deadline, after which the whole process group
is killed; a cap on what the program prints (stdout and stderr together), past which it is killed too;
the temporary folder, removed afterwards whatever happened. The child applies the rest to itself before
the program runs (child.py, confine.py): resource limits, the kernel's layers, the audit hook and the
import allow-list.

Written by hand, on the standard library: the well-kept tools that isolate a process (nsjail, bubblewrap,
gVisor, Docker, and the libraries over them such as epicbox or llm-sandbox) are binaries or daemons that
a pip install does not bring and that start in hundreds of milliseconds; edX's codejail needs an
AppArmor profile set up by root; RestrictedPython and the AST-rewriting sandboxes (sandtrap) run the
code in the caller's process, with no limit on time or memory and no kernel in the way.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import py_compile
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.sandbox.child import EXIT_BLOCKED, EXIT_MEMORY, EXIT_RAISED, MARK

Status = Literal["ok", "raised", "blocked", "timeout", "cpu", "memory", "output", "crashed", "no_answer"]

# What an arithmetic program needs, and nothing that reaches a file, a process or the network.
DEFAULT_MODULES = (
    "bisect", "cmath", "collections", "dataclasses", "datetime", "decimal", "enum", "fractions",
    "functools", "heapq", "itertools", "math", "numbers", "operator", "random", "re", "statistics",
    "string", "typing",
)  # fmt: skip
_HERE = Path(__file__).resolve().parent
# The child's first line: this folder on its path, then child.py as a module (child.py says why).
_BOOT = f"import sys; sys.path.insert(0, {str(_HERE)!r}); import child; child.main()"
# Printed last, these say nothing: the program computed no value.
_NON_ANSWERS = {"none", "nan", "-nan", "inf", "-inf", "null", "undefined"}
_MAX_ANSWER_CHARS = 200


class Limits(BaseModel):
    """What a program may use."""

    model_config = ConfigDict(extra="forbid")

    # A word problem's program runs in milliseconds; a second of CPU is a loop that does not end.
    cpu_seconds: int = Field(2, ge=1, le=60, description="CPU time a program may use, in seconds.")
    wall_seconds: float = Field(
        10.0,
        gt=0,
        le=600,
        description="Wall-clock time from start to end, interpreter start included; the whole process "
        "group is killed then. Above cpu_seconds, so that a loaded machine reads as slow, not as a hang.",
    )
    memory_mb: int = Field(256, ge=64, le=65536, description="Address space of the process, in MiB.")
    output_bytes: int = Field(
        65536, ge=1024, description="What a program may print, stdout and stderr together."
    )
    file_mb: int = Field(1, ge=0, le=1024, description="Largest file a program may write in its folder.")
    open_files: int = Field(32, ge=8, le=1024, description="Open file descriptors.")
    modules: list[str] = Field(
        default_factory=lambda: list(DEFAULT_MODULES),
        description="Modules the program may import; the standard library's modules still import "
        "their own dependencies, under the audit hook.",
    )
    max_program_chars: int = Field(20000, ge=1, description="Longest program that is run at all.")
    kernel: bool = Field(
        True,
        description="Whether the child applies the kernel's layers (network namespace, Landlock, "
        "seccomp) where the machine allows them.",
    )
    audit_hook: bool = Field(
        True,
        description="Whether the child installs the audit hook and the import allow-list. Off, only "
        "the process and kernel layers stop a program: for testing those.",
    )


@dataclass(frozen=True)
class Result:
    """What became of one program: its answer, or why there is none."""

    status: Status
    """ok, or what stopped it: raised, blocked, timeout, cpu, memory, output, crashed, no_answer."""
    reason: str
    """Why, in a line ("" when ok)."""
    answer: str | None
    """The last non-empty line the program printed, when it ran to the end and that line is an answer."""
    stdout: str
    stderr: str
    seconds: float
    layers: tuple[str, ...] = ()
    """The layers that held: rlimits, netns, landlock, seccomp, audit (as the child reported them)."""

    @property
    def ok(self) -> bool:
        """Whether the program ran to the end and printed an answer."""
        return self.status == "ok"


def run_program(source: str, limits: Limits | None = None, tmp_root: str | Path | None = None) -> Result:
    """Run one program in the sandbox; a program that fails gives a result that says why."""
    limits = limits or Limits()
    started = time.monotonic()
    if len(source) > limits.max_program_chars:
        reason = f"the program has {len(source)} characters, over the limit of {limits.max_program_chars}"
        return Result("blocked", reason, None, "", "", 0.0)
    _byte_compile()
    workdir = tempfile.mkdtemp(prefix="synthdistill-sandbox-", dir=tmp_root)
    try:
        return _run_in(workdir, source, limits, started)
    finally:
        _remove(workdir)


def run_programs(
    sources: Sequence[str],
    limits: Limits | None = None,
    workers: int | None = None,
    tmp_root: str | Path | None = None,
) -> list[Result]:
    """Run programs side by side, `workers` at a time (the CPU count by default); results in order."""
    if not sources:
        return []
    workers = max(1, min(workers or os.cpu_count() or 1, len(sources)))
    if workers == 1:
        return [run_program(source, limits, tmp_root) for source in sources]
    with ThreadPoolExecutor(workers, thread_name_prefix="synthdistill-sandbox") as pool:
        return list(pool.map(lambda source: run_program(source, limits, tmp_root), sources))


@functools.cache
def _byte_compile() -> None:
    """Byte-compile child.py and confine.py once, so that each child loads them instead of compiling them
    (a fifth of its start); where the package's folder is read-only, its installer compiled them."""
    for name in ("child.py", "confine.py"):
        source = _HERE / name
        cached = Path(importlib.util.cache_from_source(str(source)))
        with contextlib.suppress(OSError, py_compile.PyCompileError):
            if not cached.exists() or cached.stat().st_mtime < source.stat().st_mtime:
                py_compile.compile(str(source), cfile=str(cached), doraise=True)


def _run_in(workdir: str, source: str, limits: Limits, started: float) -> Result:
    config = {
        "cpu_seconds": limits.cpu_seconds,
        "memory_bytes": limits.memory_mb * 2**20,
        "file_bytes": limits.file_mb * 2**20,
        "open_files": limits.open_files,
        "modules": ",".join(limits.modules),
        "kernel": int(limits.kernel),
        "audit_hook": int(limits.audit_hook),
    }
    arguments = [f"{name}={value}" for name, value in config.items()]
    env = {"LANG": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir}
    try:
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-B", "-c", _BOOT, *arguments],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        return Result("crashed", f"could not start the interpreter: {exc}", None, "", "", 0.0)
    deadline = started + limits.wall_seconds
    if _feed(process, source.encode("utf-8")):
        out, err, cut = _collect(process, deadline, limits.output_bytes)
    else:
        out, err, cut = b"", b"", "crashed"
    returncode, late = _end(process, deadline, killed=cut is not None)
    cut = "timeout" if late else cut
    return _result(returncode, cut, out, err, limits, time.monotonic() - started)


def _feed(process: subprocess.Popen[bytes], program: bytes) -> bool:
    """Hand the program to the child, which reads all of stdin before anything else; False if it died."""
    assert process.stdin is not None
    try:
        process.stdin.write(program)
        process.stdin.close()
    except OSError:
        _kill(process)
        return False
    return True


def _collect(process: subprocess.Popen[bytes], deadline: float, cap: int) -> tuple[bytes, bytes, str | None]:
    """Read stdout and stderr until both close, the deadline passes or the cap is reached."""
    assert process.stdout is not None and process.stderr is not None
    chunks: dict[int, list[bytes]] = {process.stdout.fileno(): [], process.stderr.fileno(): []}
    total = 0
    cut = None
    with selectors.DefaultSelector() as selector:
        for stream in (process.stdout, process.stderr):
            selector.register(stream, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                cut = "timeout"
                break
            for key, _ in selector.select(remaining):
                data = os.read(key.fd, 65536)
                if not data:
                    selector.unregister(key.fileobj)
                    continue
                chunks[key.fd].append(data)
                total += len(data)
            # The child's own report lines are few and short; the cap is for what the program prints.
            if total > cap + 4096:
                cut = "output"
                break
    if cut is not None:
        _kill(process)
    out, err = (b"".join(chunks[stream.fileno()]) for stream in (process.stdout, process.stderr))
    process.stdout.close()
    process.stderr.close()
    return out, err, cut


def _end(process: subprocess.Popen[bytes], deadline: float, killed: bool) -> tuple[int, bool]:
    """Wait for the child by the deadline, then kill what is left of its group; (its status, whether the
    deadline came first: a program that closed its output and went on)."""
    late = False
    if not killed:
        late = not _exited(process, deadline)
        _kill(process)
    return process.wait(), late


def _exited(process: subprocess.Popen[bytes], deadline: float) -> bool:
    """Whether the child ended by the deadline, waited for without reaping it (WNOWAIT), so that its
    group id cannot be taken by another process before the kill that follows."""
    if not hasattr(os, "waitid"):  # macOS: no seccomp there to stop forks, nor waitid; the group is left
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
        return True
    while os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.returncode is not None:
        return  # reaped: its group id may already be another's
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _result(
    returncode: int, cut: str | None, out: bytes, err: bytes, limits: Limits, seconds: float
) -> Result:
    stdout = out[: limits.output_bytes].decode("utf-8", errors="replace")
    # split, not splitlines: the mark starts with a record separator, which splitlines breaks at.
    lines = err.decode("utf-8", errors="replace").split("\n")
    # The child's own lines: first the layers that hold, last (if it stopped the program) why.
    marks = [line.removeprefix(MARK) for line in lines if line.startswith(MARK)]
    stderr = "\n".join(line for line in lines if line and not line.startswith(MARK))
    layers: tuple[str, ...] = ()
    if marks and marks[0].startswith("layers="):
        layers = tuple(marks.pop(0).removeprefix("layers=").split(","))
    said = marks[-1] if marks else ""
    status, reason = _verdict(returncode, cut, said, limits)
    answer = None
    if status == "ok":
        answer, reason = _answer(stdout)
        status = "ok" if answer is not None else "no_answer"
    return Result(status, reason, answer, stdout, stderr[-limits.output_bytes :], round(seconds, 4), layers)


def _verdict(returncode: int, cut: str | None, said: str, limits: Limits) -> tuple[Status, str]:
    if cut == "crashed":
        return "crashed", "the interpreter died before it read the program"
    if cut == "timeout":
        return "timeout", f"still running after {limits.wall_seconds:g} s (wall clock); killed"
    if cut == "output":
        return "output", f"printed more than {limits.output_bytes} bytes; killed"
    if returncode == EXIT_BLOCKED:
        return "blocked", said or "blocked"
    if returncode == EXIT_MEMORY or said == "memory":
        return "memory", f"ran out of its {limits.memory_mb} MiB of memory"
    if returncode == EXIT_RAISED:
        return "raised", said or "raised an exception"
    if returncode == -signal.SIGXCPU:
        return "cpu", f"used its {limits.cpu_seconds} s of CPU time; killed"
    if returncode == -signal.SIGXFSZ:
        return "blocked", f"wrote a file larger than {limits.file_mb} MiB"
    if returncode < 0:
        return "crashed", f"killed by {signal.Signals(-returncode).name}"
    if returncode != 0:
        return "raised", f"exited with status {returncode}"
    return "ok", ""


def _answer(stdout: str) -> tuple[str | None, str]:
    """The last non-empty printed line, or None and why it is not an answer."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not lines:
        return None, "printed nothing"
    last = lines[-1]
    if last.lower() in _NON_ANSWERS or len(last) > _MAX_ANSWER_CHARS or " object at 0x" in last:
        return None, f"printed a non-answer: {last[:80]!r}"
    return last, ""


def _remove(workdir: str) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
    if os.path.exists(workdir):
        # A folder the program made unreadable cannot be emptied until it is opened up again.
        for root, folders, _ in os.walk(workdir):
            for folder in folders:
                os.chmod(os.path.join(root, folder), 0o700)
        shutil.rmtree(workdir, ignore_errors=True)
