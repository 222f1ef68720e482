"""Walls from the kernel for the sandbox worker: Landlock (files, TCP, signals) and a seccomp filter (processes).

Both are irreversible and inherited by every thread the process starts afterwards, so the worker applies them
while it is still single-threaded, before any model code or authorized module is loaded:

    ruleset = landlock_ruleset(read=python_dirs, write=[workdir], network=False)   # may raise WallError
    no_new_privs()
    landlock_restrict(ruleset)
    seccomp_filter(network=False)

Landlock (Linux 5.13+, ABI 1-7): reads only under `read`, reads and writes only under `write`; no TCP bind or
connect unless the network is allowed (ABI 4+); no signal to, and no abstract unix socket of, a process outside
the worker's own domain (ABI 6+). seccomp (x86_64): no new process (fork, vfork, clone without CLONE_THREAD;
clone3 answers ENOSYS so the C library falls back to clone), no exec, no session or group change, no signal to
another process, no ptrace or reading another's memory, no mount or namespace, no keyring, bpf, io_uring,
perf or module loading; sockets only of the internet families and only with the network allowed. A refused call
fails with EPERM: the code sees an error, the worker lives on.

This module has no dependency beyond ctypes and the C library, and imports nothing from cogscope.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
import struct
from typing import Any

__all__ = [
    "WallError",
    "landlock_abi",
    "landlock_restrict",
    "landlock_ruleset",
    "no_new_privs",
    "real_root",
    "seccomp_filter",
]


class WallError(RuntimeError):
    """A wall this kernel cannot put up; the message names what is missing and the fix."""


# -- Landlock -------------------------------------------------------------------------------------------------
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446  # every arch
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_REMOVE_DIR, FS_REMOVE_FILE, FS_MAKE_CHAR, FS_MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
FS_MAKE_REG, FS_MAKE_SOCK, FS_MAKE_FIFO, FS_MAKE_BLOCK, FS_MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3, 5
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6
FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV  # those a file rule may hold
READ_RIGHTS = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
LANDLOCK_FIX = (
    "Landlock is not available: the sandbox needs Linux 5.13 or later with Landlock enabled "
    "(CONFIG_SECURITY_LANDLOCK=y and 'landlock' in the lsm= boot parameter)"
)


def _libc() -> Any:
    lib = ctypes.CDLL(None, use_errno=True)
    lib.syscall.restype = ctypes.c_long
    lib.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return lib


def _fs_rights(abi: int) -> int:
    """Every file-system right this Landlock ABI knows: all of them are handled (denied unless a rule allows)."""
    rights = (1 << 13) - 1
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is missing or disabled."""
    lib = _libc()
    abi = lib.syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), LANDLOCK_CREATE_RULESET_VERSION)
    return max(0, int(abi))


def landlock_ruleset(*, read: list[str], write: list[str], network: bool) -> tuple[int, dict[str, Any]]:
    """A Landlock ruleset (its descriptor) allowing reads under `read` and everything under `write`.

    Paths that do not exist are skipped. Returns the descriptor and what it covers, for the worker's report."""
    abi = landlock_abi()
    if abi < 1:
        raise WallError(LANDLOCK_FIX)
    handled = _fs_rights(abi)
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 and not network else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("QQQ", handled, net, scoped)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    buffer = ctypes.create_string_buffer(attr[:size], size)
    lib = _libc()
    fd = int(lib.syscall(SYS_LANDLOCK_CREATE_RULESET, buffer, ctypes.c_size_t(size), 0))
    if fd < 0:
        raise WallError(f"{LANDLOCK_FIX} (landlock_create_ruleset: {os.strerror(ctypes.get_errno())})")
    try:
        for path in read:
            _allow(lib, fd, path, READ_RIGHTS & handled)
        for path in write:
            _allow(lib, fd, path, handled)
    except BaseException:
        os.close(fd)
        raise
    report = {"landlock_abi": abi, "landlock_net": bool(net) or network, "landlock_signals": bool(scoped)}
    return fd, report


def _allow(lib: Any, ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # not there (or not reachable): nothing to allow
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= FILE_RIGHTS
        rule = ctypes.create_string_buffer(struct.pack("=Qi", rights, fd), 12)
        if lib.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH, rule, 0) != 0:
            raise WallError(f"Landlock refused a rule for {path}: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)


def landlock_restrict(ruleset: int) -> None:
    """Enforce the ruleset on this process (this thread and every one it starts from now on); irreversible."""
    lib = _libc()
    try:
        if lib.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
            raise WallError(f"{LANDLOCK_FIX} (landlock_restrict_self: {os.strerror(ctypes.get_errno())})")
    finally:
        os.close(ruleset)


# -- no_new_privs -----------------------------------------------------------------------------------------------
PR_SET_NO_NEW_PRIVS = 38


def no_new_privs() -> None:
    """PR_SET_NO_NEW_PRIVS: no set-uid gain from here on; Landlock and seccomp require it."""
    if _libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise WallError(f"prctl(PR_SET_NO_NEW_PRIVS) failed: {os.strerror(ctypes.get_errno())}")


# -- seccomp --------------------------------------------------------------------------------------------------
SYS_SECCOMP = 317  # x86_64
SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC = 1, 1
AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
LD_ABS_W, JEQ_K, JGE_K, JSET_K, RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
OFFSET_NR, OFFSET_ARCH, OFFSET_ARG0 = 0, 4, 16
CLONE_THREAD = 0x00010000
AF_INET, AF_INET6, AF_NETLINK = 2, 10, 16
SECCOMP_FIX = "seccomp filters are not available: the sandbox needs Linux with CONFIG_SECCOMP_FILTER=y"

# x86_64 numbers of the calls refused outright
DENIED = {
    "fork": 57, "vfork": 58, "execve": 59, "execveat": 322, "tkill": 200, "pidfd_send_signal": 424,
    "pidfd_open": 434, "pidfd_getfd": 438, "setsid": 112, "setpgid": 109, "ptrace": 101, "process_vm_readv": 310,
    "process_vm_writev": 311, "process_madvise": 440, "kcmp": 312, "mount": 165, "umount2": 166, "unshare": 272,
    "setns": 308, "pivot_root": 155, "chroot": 161, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442, "keyctl": 250, "add_key": 248,
    "request_key": 249, "bpf": 321, "personality": 135, "perf_event_open": 298, "userfaultfd": 323,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_by_handle_at": 304,
    "name_to_handle_at": 303, "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313,
    "delete_module": 176, "reboot": 169, "swapon": 167, "swapoff": 168, "acct": 163, "iopl": 172, "ioperm": 173,
    "migrate_pages": 256, "move_pages": 279, "quotactl": 179, "syslog": 103, "vhangup": 153,
    "settimeofday": 164, "clock_settime": 227, "adjtimex": 159, "clock_adjtime": 305, "setuid": 105,
    "setgid": 106, "setreuid": 113, "setregid": 114, "setresuid": 117, "setresgid": 119, "setgroups": 116,
    "setfsuid": 122, "setfsgid": 123, "capset": 126,
}  # fmt: skip
SYS_CLONE, SYS_CLONE3, SYS_SOCKET = 56, 435, 41
SIGNAL_CALLS = (62, 234, 129, 297)  # kill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo: only to itself


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> tuple[int, int, int, int]:
    return (code, jt, jf, k & 0xFFFFFFFF)


def _block(nr: int, body: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """`if nr == <nr>: body` (the body ends in a return); else go on with the next block."""
    return [_op(JEQ_K, nr, 0, len(body)), *body]


def _program(*, network: bool, pid: int) -> list[tuple[int, int, int, int]]:
    eperm, allow = _op(RET_K, RET_ERRNO | errno.EPERM), _op(RET_K, RET_ALLOW)
    program = [
        _op(LD_ABS_W, OFFSET_ARCH),
        _op(JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        eperm,  # another ABI (i386 through int 0x80): nothing of it is allowed
        _op(LD_ABS_W, OFFSET_NR),
        _op(JGE_K, X32_SYSCALL_BIT, 0, 1),
        eperm,  # x32 numbers
    ]
    for nr in sorted(DENIED.values()):
        program += _block(nr, [eperm])
    program += _block(SYS_CLONE3, [_op(RET_K, RET_ERRNO | errno.ENOSYS)])
    program += _block(SYS_CLONE, [_op(LD_ABS_W, OFFSET_ARG0), _op(JSET_K, CLONE_THREAD, 0, 1), allow, eperm])
    to_itself = [
        _op(LD_ABS_W, OFFSET_ARG0),
        _op(JEQ_K, pid, 0, 3),
        _op(LD_ABS_W, OFFSET_ARG0 + 4),
        _op(JEQ_K, 0, 0, 1),
        allow,
        eperm,
    ]
    for nr in SIGNAL_CALLS:
        program += _block(nr, to_itself)
    if network:
        families = [_op(LD_ABS_W, OFFSET_ARG0), _op(JEQ_K, AF_INET, 2, 0), _op(JEQ_K, AF_INET6, 1, 0)]
        families += [_op(JEQ_K, AF_NETLINK, 0, 1), allow, eperm]
        program += _block(SYS_SOCKET, families)
    else:
        program += _block(SYS_SOCKET, [eperm])
    program.append(allow)
    return program


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_filter(*, network: bool) -> int:
    """Install the filter on every thread of this process (TSYNC); returns its length in instructions."""
    if platform.machine() not in ("x86_64", "AMD64"):
        raise WallError(
            f"the sandbox's seccomp filter knows x86_64 system calls only, not {platform.machine()}; "
            "run cogscope on x86_64 or set COGSCOPE_SANDBOX_WEAK=1 (weaker, see the README)"
        )
    program = _program(network=network, pid=os.getpid())
    raw = b"".join(struct.pack("=HBBI", *ins) for ins in program)
    buffer = ctypes.create_string_buffer(raw, len(raw))
    fprog = _SockFprog(len(program), ctypes.addressof(buffer))
    lib = _libc()
    flags = SECCOMP_FILTER_FLAG_TSYNC
    if lib.syscall(SYS_SECCOMP, SECCOMP_SET_MODE_FILTER, flags, ctypes.byref(fprog)) != 0:
        raise WallError(f"{SECCOMP_FIX} (seccomp: {os.strerror(ctypes.get_errno())})")
    return len(program)


def real_root() -> bool:
    """Root of the machine itself, not root of a user namespace (where uid 65534 may not even exist)."""
    if os.getuid() != 0:
        return False
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() == ["0", "0", "4294967295"]
    except OSError:
        return False
