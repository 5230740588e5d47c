"""The sandboxed child: confines itself, then runs the program it reads on stdin.

Imported by the one line that runner.py starts `python -I -S -B -c LINE NAME=VALUE ...` with (isolated:
no environment variables, no site packages, no user folder on the path, no bytecode written), in a new
session whose working folder is the sandbox's temporary folder; it imports the standard library only.
Imported, not run as a script, so that its byte-compiled form is loaded rather than compiled each time.
In order, before the program runs:

1. resource limits: CPU time, address space, file size, open files, processes (none), core files (none);
2. the kernel's layers (confine.py): network namespace, Landlock, seccomp, each where the machine allows;
3. an audit hook (PEP 578), which stops the process at the first forbidden event: a process, a socket,
   ctypes, a signal, a read outside the interpreter's library and the sandbox's folder, a write or any
   other change outside the sandbox's folder, the import of a module that reaches outside;
4. `__import__` replaced by a check of the program's own imports against the allow-list (the standard
   library's modules still import what they need, under the audit hook).

A stopped program leaves one line on stderr that starts with MARK and says why, and exits with its code
below; the first such line names the layers that hold. The audit hook and the import check are Python
and so only as strong as the interpreter: a program that corrupts the interpreter's memory escapes them,
and the kernel's layers are what then still hold.
"""

from __future__ import annotations

import builtins
import os
import resource
import sys

# Not typing.TYPE_CHECKING: importing typing would double the child's start (mypy reads the name alone).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import ModuleType

MARK = "\x1esandbox:"
EXIT_BLOCKED, EXIT_MEMORY, EXIT_RAISED = 90, 91, 92

# Modules no code in the sandbox may load, whoever asks: they reach processes, sockets, memory or files.
_DENIED_MODULES = frozenset({
    "ctypes", "_ctypes", "socket", "_socket", "ssl", "_ssl", "select", "selectors", "subprocess",
    "_posixsubprocess", "multiprocessing", "_multiprocessing", "mmap", "fcntl", "pty", "termios", "resource",
    "signal", "asyncio", "_asyncio", "urllib", "http", "ftplib", "poplib", "imaplib", "smtplib", "telnetlib",
    "webbrowser", "sqlite3", "_sqlite3", "shutil", "tempfile", "pdb", "_xxsubinterpreters", "_posixshmem",
    "readline", "_curses", "confine",
})  # fmt: skip
# Events denied outright (and every event of these families).
_DENIED_EVENTS = frozenset({
    "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.forkpty", "os.kill", "os.killpg",
    "os.putenv", "os.unsetenv", "os.chdir", "os.lockf", "subprocess.Popen", "pty.spawn",
    "signal.pthread_kill", "code.__new__", "sys.addaudithook", "gc.get_objects", "gc.get_referrers",
    "gc.get_referents", "sys._current_frames", "sys._current_exceptions", "builtins.breakpoint", "pdb.Pdb",
})  # fmt: skip
_DENIED_FAMILIES = (
    "socket.", "ctypes.", "resource.", "mmap.", "urllib.", "http.", "ftplib.", "smtplib.", "poplib.",
    "imaplib.", "nntplib.", "telnetlib.", "webbrowser.", "sqlite3.", "shutil.",
)  # fmt: skip
# Events that name paths the program may change only inside its folder (argument positions).
_CHANGES = {
    "os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.chmod": (0,), "os.chown": (0,),
    "os.truncate": (0,), "os.utime": (0,), "os.setxattr": (0,), "os.removexattr": (0,),
    "os.rename": (0, 1), "os.link": (0, 1), "os.symlink": (0, 1),
}  # fmt: skip
_READS = {"os.listdir": 0, "os.scandir": 0, "os.walk": 0, "os.fwalk": 0, "os.listxattr": 0, "os.getxattr": 0}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def main() -> None:
    """Confine this process, then run the program on stdin as `__main__` of its own namespace."""
    # name=value arguments: json would import re, a tenth of the child's start.
    config = dict(argument.split("=", 1) for argument in sys.argv[1:])
    source = sys.stdin.buffer.read().decode("utf-8", errors="replace")
    workdir = os.getcwd()
    # sys.path[0] is this folder, put there by the runner to import this module and confine.py.
    library = [path for path in sys.path[1:] if path and os.path.exists(path)]
    _limit(config)
    layers = ["rlimits"]
    if config["kernel"] == "1":
        import confine

        layers += confine.confine(workdir, library)
    del sys.path[0]
    for name in [name for name in sys.modules if name.split(".")[0] in _DENIED_MODULES]:
        del sys.modules[name]
    if config["audit_hook"] == "1":
        _install_guards(workdir, library, frozenset(config["modules"].split(",")) - {""})
        layers.append("audit")
    sys.stderr.write(f"{MARK}layers={','.join(layers)}\n")
    sys.stderr.flush()
    _run(source)


def _limit(config: dict[str, str]) -> None:
    cpu = int(config["cpu_seconds"])
    for limit, value in (
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),  # SIGXCPU at the soft limit, SIGKILL a second later
        (resource.RLIMIT_AS, int(config["memory_bytes"])),
        (resource.RLIMIT_FSIZE, int(config["file_bytes"])),
        (resource.RLIMIT_NOFILE, int(config["open_files"])),
        # Root is exempt from RLIMIT_NPROC; seccomp (confine.py) and the audit hook stop forks there.
        (resource.RLIMIT_NPROC, 0),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(limit, value if isinstance(value, tuple) else (value, value))


def _install_guards(workdir: str, library: list[str], modules: frozenset[str]) -> None:
    """The audit hook and the import check; neither keeps a reference the program can reach to its rules."""
    stderr, exit_now, realpath, sep = sys.stderr, os._exit, os.path.realpath, os.sep
    readable = tuple(realpath(path) for path in [workdir, *library])
    home = realpath(workdir)
    trusted = (*(realpath(path) for path in library), "<frozen ")

    def stop(why: str) -> None:
        stderr.write(f"\n{MARK}blocked: {why}\n")
        stderr.flush()
        exit_now(EXIT_BLOCKED)

    def inside(path: object, roots: tuple[str, ...]) -> bool:
        if isinstance(path, int):
            return True  # an open descriptor: the program can only have those it was given or opened
        real = realpath(os.fsdecode(path))  # type: ignore[arg-type]
        return any(real == root or real.startswith(root + sep) for root in roots)

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event == "open":
            path, mode, flags = args
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            if writes and not inside(path, (home,)):
                stop(f"write to {path} (outside the sandbox's folder)")
            if not writes and path is not None and not inside(path, readable):
                stop(f"read of {path} (outside the sandbox's folder)")
        elif event == "import":
            if str(args[0]).split(".")[0] in _DENIED_MODULES:
                stop(f"import of {args[0]}")
        elif event in _CHANGES:
            for position in _CHANGES[event]:
                if not inside(args[position], (home,)):
                    stop(f"{event} on {args[position]} (outside the sandbox's folder)")
        elif event in _READS:
            if args[_READS[event]] is not None and not inside(args[_READS[event]], readable):
                stop(f"{event} of {args[_READS[event]]} (outside the sandbox's folder)")
        elif event in _DENIED_EVENTS or event.startswith(_DENIED_FAMILIES):
            stop(event)

    original = builtins.__import__
    allowed = ", ".join(sorted(modules))

    def guarded_import(
        name: str,
        globals: Mapping[str, object] | None = None,
        locals: Mapping[str, object] | None = None,
        fromlist: Sequence[str] | None = (),
        level: int = 0,
    ) -> ModuleType:
        # The library's own modules import what they need; the program's imports pass the allow-list.
        caller = sys._getframe(1).f_code.co_filename
        if not caller.startswith(trusted) and (level or name.split(".")[0] not in modules):
            stop(f"import of {name} (allowed: {allowed})")
        return original(name, globals, locals, fromlist, level)

    sys.addaudithook(hook)
    builtins.__import__ = guarded_import


def _run(source: str) -> None:
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    try:
        exec(compile(source, "<program>", "exec"), namespace)
    except MemoryError:
        _report("memory", EXIT_MEMORY)
    except SystemExit:
        raise
    except BaseException as exc:
        line = _program_line(exc)
        where = f" (line {line})" if line else ""
        message = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        _report(f"raised {type(exc).__name__}: {message[:300]}{where}", EXIT_RAISED)
    sys.stdout.flush()


def _report(why: str, code: int) -> None:
    sys.stdout.flush()
    sys.stderr.write(f"\n{MARK}{why}\n")
    sys.stderr.flush()
    os._exit(code)


def _program_line(exc: BaseException) -> int | None:
    """The last line of the program the exception passed through (a syntax error's own line)."""
    if isinstance(exc, SyntaxError):
        return exc.lineno
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<program>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


if __name__ == "__main__":
    main()
