"""How many CPU threads a run uses: ``threads: auto`` (the default), a number, or ``null``.

Why not PyTorch's default: on a 2-core machine with another process busy, two OpenMP
threads wait on each other and can run 10-80x slower than one (issue 15 measured the
default ``boltzkit train`` at 196 s instead of 10 s). ``auto`` therefore uses one thread
when the model's largest matrix product is too small to gain from more (below
:data:`SMALL_WORK` multiply-adds), and otherwise times that product with one thread and
with PyTorch's current count, interleaved, and keeps the count only when it is clearly
faster (:data:`GAIN`). On CUDA the CPU count hardly matters and is left alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

SMALL_WORK = 4_000_000
"""Multiply-adds of one ``(rows, n_in) @ (n_in, n_out)`` product below which threads cost
more than they save (a 64x100 RBM with batch 64 needs 0.4 M)."""
GAIN = 1.3
"""Several threads are kept only when at least this much faster than one."""
REPEATS = 5


@dataclass(frozen=True)
class ThreadChoice:
    threads: int | None
    """The count to use (``None``: leave PyTorch's setting)."""
    reason: str


def largest_product(model: nn.Module, rows: int) -> tuple[int, int, int]:
    """``(rows, n_in, n_out)`` of the model's largest weight matrix applied to ``rows``."""
    matrices = [p for p in model.parameters() if p.dim() == 2]
    if not matrices:
        return rows, 1, 1
    weight = max(matrices, key=lambda p: p.numel())
    return rows, weight.shape[1], weight.shape[0]


def _seconds(a: torch.Tensor, b: torch.Tensor, threads: int) -> float:
    torch.set_num_threads(threads)
    started = time.perf_counter()
    torch.mm(a, b)
    return time.perf_counter() - started


def choose_threads(setting: int | str | None, model: nn.Module, rows: int,
                   device: torch.device | str = "cpu") -> ThreadChoice:
    """Resolve a ``threads`` setting for ``model`` fed ``rows`` examples at a time."""
    if setting is None:
        return ThreadChoice(None, "PyTorch's default (threads: null)")
    if setting != "auto":
        return ThreadChoice(int(setting), "threads set in the config")
    if torch.device(device).type != "cpu":
        return ThreadChoice(None, f"auto: on {device}, CPU threads left at PyTorch's setting")
    available = torch.get_num_threads()
    shape = largest_product(model, rows)
    work = shape[0] * shape[1] * shape[2]
    if available == 1:
        return ThreadChoice(1, "auto: one thread available")
    if work < SMALL_WORK:
        return ThreadChoice(1, f"auto: products of {work / 1e6:.2g} M multiply-adds are too small "
                               "to gain from threads")
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(shape[0], shape[1], generator=generator)
    b = torch.randn(shape[1], shape[2], generator=generator)
    single, several = [], []
    try:
        _seconds(a, b, available)  # warm both thread pools before timing
        _seconds(a, b, 1)
        for _ in range(REPEATS):  # interleaved, so a neighbour's burst hits both counts alike
            several.append(_seconds(a, b, available))
            single.append(_seconds(a, b, 1))
    finally:
        torch.set_num_threads(available)
    speedup = min(single) / min(several)
    if speedup >= GAIN:
        return ThreadChoice(available, f"auto: {available} threads measured {speedup:.2f}x faster than 1")
    return ThreadChoice(1, f"auto: {available} threads measured only {speedup:.2f}x faster than 1")


@contextmanager
def using_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` CPU threads, restoring the previous count after."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
