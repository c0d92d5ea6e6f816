"""What the CPU is, from Linux's ``/proc/cpuinfo`` (other systems: unknown)."""

from __future__ import annotations

from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpuinfo_field(key: str, cpuinfo: Path = CPUINFO) -> str | None:
    """The value of the first ``key : value`` line of ``cpuinfo`` (the first CPU's), or
    None where the file or the key is missing."""
    if not cpuinfo.is_file():
        return None
    for line in cpuinfo.read_text().splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() == key:
            return value.strip()
    return None
