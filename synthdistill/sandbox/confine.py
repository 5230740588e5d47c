"""The kernel's layers of the sandbox, applied by the child to itself: a network namespace, seccomp, Landlock.

Runs inside the sandboxed child (child.py imports it by path, before the program), so it imports the
standard library only. Each layer is applied where the kernel and the process's privileges allow it and
reported by name, so a result says what held:

- `netns`: unshare(CLONE_NEWNET), with CLONE_NEWUSER when not root: the child sees only a loopback that is
  down, so no packet leaves by any protocol.
- `seccomp`: a BPF filter that fails fork, vfork, clone, clone3, execve, execveat, socket, socketpair,
  ptrace, unshare, setns, mount, bpf, io_uring_setup, setrlimit, prlimit64 and a few more with EPERM: no
  new process (root is not held by RLIMIT_NPROC, this is), no new program, no socket of any family, no
  raised limit, whatever the interpreter is made to do. x86_64 and aarch64 only; elsewhere the layer is
  left out.
- `landlock`: the file system is read-only beneath the interpreter's own library folders and the
  sandbox's folder, and writable beneath the sandbox's folder only; TCP bind and connect are denied
  (ABI 4) and signals and abstract unix sockets stay inside the sandbox (ABI 6). Linux 5.13 or later.

The calls go through ctypes, since the standard library has no binding for them (os.unshare arrives in
Python 3.12) and the libraries that do (pyseccomp, landlock) are thin, little kept, or not on PyPI.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2

# seccomp: the denied calls by architecture (AUDIT_ARCH value, {name: number}).
_ARCHES = {
    "x86_64": (
        0xC000003E,
        {
            "fork": 57, "vfork": 58, "clone": 56, "clone3": 435, "execve": 59, "execveat": 322,
            "socket": 41, "socketpair": 53, "ptrace": 101, "unshare": 272, "setns": 308, "mount": 165,
            "chroot": 161, "pivot_root": 155, "bpf": 321, "perf_event_open": 298, "keyctl": 250,
            "userfaultfd": 323, "io_uring_setup": 425, "process_vm_writev": 311, "kexec_load": 246,
            "setrlimit": 160, "prlimit64": 302,
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "clone": 220, "clone3": 435, "execve": 221, "execveat": 281, "socket": 198,
            "socketpair": 199, "ptrace": 117, "unshare": 97, "setns": 268, "mount": 40, "chroot": 51,
            "pivot_root": 41, "bpf": 280, "perf_event_open": 241, "keyctl": 219, "userfaultfd": 282,
            "io_uring_setup": 425, "process_vm_writev": 271, "kexec_load": 104, "setrlimit": 164,
            "prlimit64": 261,
        },
    ),
}  # fmt: skip
_SECCOMP_RET_ALLOW = 0x7FFF0000
_SECCOMP_RET_KILL_PROCESS = 0x80000000
_SECCOMP_RET_EPERM = 0x00050000 | 1
_X32_BIT = 0x40000000

# Landlock (include/uapi/linux/landlock.h): syscall numbers are the same on every architecture.
_LANDLOCK_CREATE_RULESET, _LANDLOCK_ADD_RULE, _LANDLOCK_RESTRICT_SELF = 444, 445, 446
_LANDLOCK_RULE_PATH_BENEATH = 1
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_RIGHTS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
_FILE_RIGHTS = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | (1 << 14) | (1 << 15)
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1


def confine(workdir: str, readable: list[str]) -> list[str]:
    """Apply every kernel layer the machine allows; the names of those that hold."""
    if not sys.platform.startswith("linux"):
        return []
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    held = []
    if _network_namespace(libc):
        held.append("netns")
    # Both seccomp and Landlock need it without CAP_SYS_ADMIN; it also keeps a setuid program from gaining
    # rights.
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, _long(1), _long(0), _long(0), _long(0)) != 0:
        return held
    if _landlock(libc, workdir, readable):
        held.append("landlock")
    # Last, since it denies unshare.
    if _seccomp(libc):
        held.append("seccomp")
    return held


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _long(value: int) -> ctypes.c_long:
    # syscall() and prctl() are variadic: a plain int would travel as 32 bits.
    return ctypes.c_long(value)


def _network_namespace(libc: ctypes.CDLL) -> bool:
    flags = _CLONE_NEWNET if os.geteuid() == 0 else _CLONE_NEWUSER | _CLONE_NEWNET
    return int(libc.unshare(flags)) == 0


def _seccomp(libc: ctypes.CDLL) -> bool:
    arch = _ARCHES.get(os.uname().machine)
    if arch is None:
        return False
    audit_arch, numbers = arch
    denied = sorted(set(numbers.values()))
    # 0 load arch; 1 other arch -> kill; 2 load nr; 3 x32 -> eperm; 4.. each denied -> eperm; allow;
    # eperm; kill. A jump's offset counts from the next instruction.
    eperm = 4 + len(denied) + 1
    kill = eperm + 1
    program = [
        (0x20, 0, 0, 4),
        (0x15, 0, kill - 2, audit_arch),
        (0x20, 0, 0, 0),
        (0x35, eperm - 4, 0, _X32_BIT),
    ]
    program += [(0x15, eperm - p - 1, 0, nr) for p, nr in enumerate(denied, start=4)]
    program += [(0x06, 0, 0, _SECCOMP_RET_ALLOW), (0x06, 0, 0, _SECCOMP_RET_EPERM)]
    program.append((0x06, 0, 0, _SECCOMP_RET_KILL_PROCESS))
    code = ctypes.create_string_buffer(b"".join(struct.pack("=HBBI", *op) for op in program))
    fprog = _SockFprog(len(program), ctypes.addressof(code))
    flag = _long(_SECCOMP_MODE_FILTER)
    return int(libc.prctl(_PR_SET_SECCOMP, flag, ctypes.byref(fprog), _long(0), _long(0))) == 0


def _landlock(libc: ctypes.CDLL, workdir: str, readable: list[str]) -> bool:
    # LANDLOCK_CREATE_RULESET_VERSION asks for the ABI version.
    abi = int(libc.syscall(_long(_LANDLOCK_CREATE_RULESET), None, _long(0), _long(1)))
    if abi < 1:
        return False
    fs_rights = _FS_RIGHTS_BY_ABI[max(v for v in _FS_RIGHTS_BY_ABI if v <= abi)]
    net = _NET_BIND_TCP | _NET_CONNECT_TCP if abi >= 4 else 0
    scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("=QQQ", fs_rights, net, scoped)[: 24 if abi >= 6 else 16 if abi >= 4 else 8]
    ruleset = int(libc.syscall(_long(_LANDLOCK_CREATE_RULESET), attr, _long(len(attr)), _long(0)))
    if ruleset < 0:
        return False
    try:
        rules = [(path, _FS_READ_FILE | _FS_READ_DIR | _FS_EXECUTE) for path in readable]
        rules.append((workdir, fs_rights))
        if not all(_allow(libc, ruleset, path, rights & fs_rights) for path, rights in rules):
            return False
        return int(libc.syscall(_long(_LANDLOCK_RESTRICT_SELF), _long(ruleset), _long(0))) == 0
    finally:
        os.close(ruleset)


def _allow(libc: ctypes.CDLL, ruleset: int, path: str, rights: int) -> bool:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return True  # a library folder that is not there needs no rule
    try:
        if not os.path.isdir(path):
            rights &= _FILE_RIGHTS
        beneath = struct.pack("=Qi", rights, fd)
        rule = _long(_LANDLOCK_RULE_PATH_BENEATH)
        added = libc.syscall(_long(_LANDLOCK_ADD_RULE), _long(ruleset), rule, beneath, _long(0))
        return int(added) == 0
    finally:
        os.close(fd)
