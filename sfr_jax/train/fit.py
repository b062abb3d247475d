"""The largest per-device batch whose compiled step fits the device's memory, found by compiling.

Memory grows about linearly with the batch, so each probe aims where the line through what is known meets
the limit; a probe that fails to halve the interval is followed by a plain bisection, so the search ends
within about twice log2(batch) compiles even when the line is a poor guess.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

from sfr_jax.train.aot import Compiled


@dataclasses.dataclass(frozen=True)
class Search:
    """The answer: `largest` per-device batch that fits (0: not even 1), its compile, and how many it took."""

    largest: int
    fitting: Compiled | None
    compiles: int
    certain: bool  # False when max_compiles ran out first (then `largest` is a lower bound)


def _aim(lo: int, hi: int, known: list, failing: Compiled) -> int | None:
    """Where the memory line meets the limit: through the two largest fitting compiles, or the largest and
    the failing one, or (none fits yet) through zero and the failing one."""
    limit = failing.available if math.isfinite(failing.available) else failing.limit
    if not math.isfinite(limit):
        return None
    fit = sorted((c.per_device_batch, c.total) for c in known if c.fits and math.isfinite(c.total))
    if len(fit) >= 2:
        (b1, m1), (b2, m2) = fit[-2], fit[-1]
    elif len(fit) == 1 and math.isfinite(failing.required) and failing.required > fit[0][1]:
        (b1, m1), (b2, m2) = fit[0], (hi, failing.required)
    elif not fit and math.isfinite(failing.required) and failing.required > 0:
        (b1, m1), (b2, m2) = (0, 0.0), (hi, failing.required)
    else:
        return None
    slope = (m2 - m1) / (b2 - b1)
    if slope <= 0:
        return None
    return b1 + math.floor((limit - m1) / slope)


def quantum_for(per_device_batch: int) -> int:
    """The step of a search: multiples of 8 from 64 images per device up (the tile-friendly sizes one would
    pick anyway; each compile of a large model costs minutes), else every size."""
    return 8 if per_device_batch >= 64 else 1


def largest_batch(compile_at: Callable[[int], Compiled], failing: Compiled, max_compiles: int = 8,
                  quantum: int = 1) -> Search:
    """The largest per-device batch below `failing.per_device_batch` (a compile that did not fit), a multiple
    of `quantum`, for which `compile_at(per_device_batch)` fits."""
    lo, hi = 0, -(-failing.per_device_batch // quantum)  # in units of `quantum`
    best, known, count, bisect = None, [], 0, False
    while hi - lo > 1 and count < max_compiles:
        guess = None if bisect else _aim(lo * quantum, hi * quantum, known, failing)
        guess = None if guess is None else guess // quantum
        probe = (lo + hi) // 2 if guess is None else min(max(guess, lo + 1), hi - 1)
        result = compile_at(probe * quantum)
        count += 1
        known.append(result)
        before = hi - lo
        if result.fits:
            lo, best = probe, result
        else:
            hi, failing = probe, result
        bisect = guess is not None and (hi - lo) * 2 > before
    return Search(lo * quantum, best, count, hi - lo <= 1)
