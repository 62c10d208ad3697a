"""The system-call filter that bubblewrap loads into every jailed process (``bwrap --seccomp``).

This file is also a script: ``python3 seccomp_filter.py`` writes the filter, compiled to a
classic BPF program by libseccomp, to standard output. It imports nothing from the portal,
because it runs under whichever interpreter has libseccomp's own Python binding (Debian's
``python3-seccomp`` is built for the system Python only); the trusted parent runs it once and
hands the bytes to bubblewrap through a file descriptor. No BPF is assembled here by hand.

The filter allows by default (Python, numpy, onnxruntime and DuckDB need a broad set of calls)
and refuses what a scorer or SQL worker never needs and what would widen the kernel surface a
hostile program can reach: new namespaces, mounts, ptrace and cross-process memory access, kernel
keyrings, BPF, perf events, userfaultfd, io_uring, module and kexec loading, handle-based opens,
clock and host changes, sockets of any family but AF_UNIX, and terminal injection (TIOCSTI).
"""

from __future__ import annotations

import errno
import socket
import sys

# Refused with EPERM. Names unknown to this architecture's kernel headers are skipped.
DENIED = (
    "acct", "add_key", "adjtimex", "bpf", "chroot", "clock_adjtime", "clock_settime",
    "delete_module", "fanotify_init", "finit_module", "fsconfig", "fsmount", "fsopen",
    "fspick", "init_module", "io_uring_enter", "io_uring_register", "io_uring_setup",
    "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie",
    "mount", "mount_setattr", "move_mount", "name_to_handle_at", "open_by_handle_at",
    "open_tree", "perf_event_open", "personality", "pivot_root", "process_vm_readv",
    "process_vm_writev", "ptrace", "quotactl", "reboot", "request_key", "setdomainname",
    "sethostname", "setns", "settimeofday", "swapoff", "swapon", "syslog", "umount2",
    "unshare", "uselib", "userfaultfd", "vhangup",
)
# clone() flags that would create a namespace: refused one by one (a thread or a plain fork
# passes).
NAMESPACE_FLAGS = (0x10000000, 0x00020000, 0x04000000, 0x08000000, 0x20000000, 0x40000000,
                   0x02000000, 0x00000080)  # USER, NS, UTS, IPC, PID, NET, CGROUP, TIME
TIOCSTI, TIOCLINUX = 0x5412, 0x541C


def build(seccomp):  # -> seccomp.SyscallFilter
    """The filter, built with libseccomp's binding (passed in: only the script imports it)."""
    rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in DENIED:
        try:
            rules.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except (RuntimeError, ValueError, OSError):
            continue  # not a system call on this architecture
    for flag in NAMESPACE_FLAGS:
        rules.add_rule(seccomp.ERRNO(errno.EPERM), "clone",
                       seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    # clone3 passes its flags in memory a filter cannot read: make the C library fall back to
    # clone(), whose flags are checked above.
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    rules.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), "socket",
                   seccomp.Arg(0, seccomp.NE, socket.AF_UNIX))
    for request in (TIOCSTI, TIOCLINUX):
        rules.add_rule(seccomp.ERRNO(errno.EPERM), "ioctl",
                       seccomp.Arg(1, seccomp.MASKED_EQ, 0xFFFFFFFF, request))
    return rules


def main() -> int:
    try:
        import seccomp
    except ImportError:
        sys.stderr.write("libseccomp's Python binding (seccomp) is not installed\n")
        return 3
    build(seccomp).export_bpf(sys.stdout)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
