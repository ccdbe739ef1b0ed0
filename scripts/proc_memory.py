"""Resident memory of this process from /proc/self/status, for the benchmark scripts (Linux).

Peak is VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across fork and exec, so a worker
process could report its parent's high-water mark.
"""

from __future__ import annotations


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status: the benchmarks measure memory on Linux only")


def rss_mib() -> float:
    """Resident set size now, MiB."""
    return _status_mib("VmRSS")


def peak_rss_mib() -> float:
    """This process's own resident high-water mark, MiB."""
    return _status_mib("VmHWM")
