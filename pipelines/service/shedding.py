"""How long the scoring worker takes, learnt from what it scores: the basis for shedding load
by time (serve.max_wait_ms) rather than by queue length alone.

A micro-batch of n leads costs about `fixed + per_lead * n` seconds: the fixed part is the
per-call overhead of pandas and scikit-learn (tens of milliseconds), the per-lead part is
small. Both change with the model, the code and how busy the machine is, so neither is a
setting: they are fitted by exponentially weighted least squares over the batches the worker
has just scored, and follow the machine within a few dozen batches.
"""

from __future__ import annotations

import threading


class BatchCost:
    """Seconds to score a micro-batch of n leads, `fixed + per_lead * n`, fitted on the
    recent batches (each batch's weight halves every `halflife` batches)."""

    # Below this spread of batch sizes the split between fixed and per-lead cost is noise
    # (one batch of 2 among many of 1): the cost is then taken as fixed.
    MIN_SIZE_VARIANCE = 0.25

    def __init__(self, halflife: float = 20.0) -> None:
        self._decay = 0.5 ** (1.0 / halflife)
        self._w = self._n = self._t = self._nn = self._nt = 0.0
        self._lock = threading.Lock()  # the worker writes, the event loop reads

    def observe(self, leads: int, seconds: float) -> None:
        d = self._decay
        with self._lock:
            self._w = self._w * d + 1.0
            self._n = self._n * d + leads
            self._t = self._t * d + seconds
            self._nn = self._nn * d + leads * leads
            self._nt = self._nt * d + leads * seconds

    def coefficients(self) -> tuple[float, float] | None:
        """(fixed seconds, seconds per lead), or None before any batch was scored."""
        with self._lock:
            w, n, t, nn, nt = self._w, self._n, self._t, self._nn, self._nt
        if w == 0.0:
            return None
        mean_n, mean_t = n / w, t / w
        variance = nn / w - mean_n * mean_n
        if variance < self.MIN_SIZE_VARIANCE:
            return mean_t, 0.0
        per_lead = max((nt / w - mean_n * mean_t) / variance, 0.0)
        fixed = mean_t - per_lead * mean_n
        if fixed < 0.0:  # the line through the batches passes below 0 leads: all per lead
            return 0.0, mean_t / mean_n
        return fixed, per_lead

    def predict(self, leads: int) -> float:
        """Seconds a batch of `leads` is expected to take (0 before any batch was scored)."""
        found = self.coefficients()
        if found is None:
            return 0.0
        fixed, per_lead = found
        return fixed + per_lead * leads

    def cap(self, budget: float, most: int) -> int:
        """The leads one micro-batch may hold so that it is scored within `budget` seconds
        (at most `most`). When the fixed cost alone eats the budget, a batch may still hold
        as many leads as cost one fixed cost more: everyone behind it waits past the budget
        anyway, and smaller batches would only lower the throughput that drains the queue."""
        found = self.coefficients()
        if found is None or found[1] <= 0.0:
            return most
        fixed, per_lead = found
        return max(1, min(most, int(max(budget - fixed, fixed) / per_lead)))
