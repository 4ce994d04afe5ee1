"""Allocator settings for long CPU runs (training, scoring): keep freed memory in the process.

A CPU training batch of 16 at 448x800 makes dozens of float tensors of 23-69 MB. glibc hands every
allocation above its mmap threshold (at most 32 MB by default) straight to the kernel and gives it back on
free, so each new tensor is fresh pages, and filling them is a page fault every 4 KiB. On the 2-core EPYC of
session 35 that was over half of a composited batch's time: the packed stream's ``next_batch`` took 1,023 ms
a batch as it was and 450 ms with the settings below; forward + coarse loss + backward 1.47 s -> 1.05 s
(``THP_MEM_ALLOC_ENABLE`` is PyTorch's own switch: 2 MB-aligned, huge-page-advised CPU allocations).

glibc reads its settings once, when the process starts, so they can only be given by starting again:
:func:`restart_with_cpu_allocator` re-executes the running script with them set. Harmless on a GPU (the
GPU's own allocator caches already), so a recipe calls it unconditionally from its ``__main__`` block.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

#: Values for the environment: no mmap for big blocks, never trim the heap, huge pages for tensors.
CPU_ALLOCATOR_ENV: dict[str, str] = {
    "MALLOC_MMAP_THRESHOLD_": str(1 << 34),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 34),
    "THP_MEM_ALLOC_ENABLE": "1",
}


def missing_allocator_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The settings of :data:`CPU_ALLOCATOR_ENV` that ``environ`` does not set (a value given by the user wins)."""
    return {k: v for k, v in CPU_ALLOCATOR_ENV.items() if k not in environ}


def restart_with_cpu_allocator() -> None:
    """Re-execute this Python script with :data:`CPU_ALLOCATOR_ENV` in its environment, unless it is there.

    Returns only when nothing is missing (the restarted process, or a user who set the values). Set any of the
    variables yourself (e.g. ``THP_MEM_ALLOC_ENABLE=0``) to keep that one as you want it.
    """
    missing = missing_allocator_env(os.environ)
    if not missing:
        return
    env = {**os.environ, **missing}
    args = [sys.executable, *sys.argv]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, args, env)


__all__ = ["CPU_ALLOCATOR_ENV", "missing_allocator_env", "restart_with_cpu_allocator"]
