"""How many CPUs this process may use: the thread counts of decoding, packing and model fits."""

from __future__ import annotations

import os


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity: a container's or `taskset`'s limit), else
    the machine's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
