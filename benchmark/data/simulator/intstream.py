"""Bounded random integers drawn exactly as numpy's ``Generator`` draws them, at pure-Python cost.

The simulator's text is built from many single small integers (template picks, numbers,
synonym choices), and numpy's per-call overhead (microseconds) was most of its cost. For a
``PCG64`` generator, every such call consumes the generator's 32-bit outputs through Lemire's
bounded method; :class:`BoundedInts` replays that arithmetic on the same 64-bit outputs
(read in bulk with ``random_raw``), so each integer, and the generator's state afterwards,
are those of the numpy calls it replaces (tests/test_scale_parity.py checks both, rejection
branch included). docs/simulator.md, "Writing at scale".
"""

from __future__ import annotations

import numpy as np

_MASK32 = 0xFFFFFFFF
_BLOCK = 4096


class BoundedInts:
    """A stand-in for ``rng.integers`` / ``rng.permutation`` / ``rng.choice(replace=False)`` on
    a ``PCG64`` generator; call :meth:`close` to leave ``rng`` where those calls would have.

    Equivalences (numpy 2 ``Generator``, default ``int64`` dtype):

    * ``integers(n)`` / ``integers(low, high)``: ``int(rng.integers(...))``;
    * ``integers_each(highs)``: ``rng.integers(np.asarray(highs)).tolist()``;
    * ``permutation(n)``: ``rng.permutation(n).tolist()`` (a Fisher-Yates shuffle with masked
      rejection, not Lemire);
    * ``distinct(low, high, size)``: ``rng.choice(np.arange(low, high), size, replace=False)``
      (Floyd's algorithm then a shuffle, as numpy does for a population of at most 10,000).
    """

    def __init__(self, rng: np.random.Generator) -> None:
        bitgen = rng.bit_generator
        state = bitgen.state
        if state["bit_generator"] != "PCG64":
            raise TypeError(f"BoundedInts replays PCG64 only, got {state['bit_generator']}")
        self._bitgen = bitgen
        self._start = state
        self._has32 = int(state["has_uint32"])
        self._cached = int(state["uinteger"])
        self._raw: list[int] = []
        self._pos = 0
        self._consumed = 0  # 64-bit outputs taken from the generator
        self._closed = False

    def _next32(self) -> int:
        """PCG64's ``next_uint32``: the low half of a 64-bit output, then its high half."""
        if self._has32:
            self._has32 = 0
            return self._cached
        if self._pos == len(self._raw):
            if self._closed:
                raise RuntimeError("BoundedInts is closed")
            self._raw = self._bitgen.random_raw(_BLOCK).tolist()
            self._pos = 0
        x = self._raw[self._pos]
        self._pos += 1
        self._consumed += 1
        self._has32 = 1
        self._cached = x >> 32
        return x & _MASK32

    def _below(self, n: int) -> int:
        """Uniform in ``[0, n)`` for ``1 <= n < 2**32`` (numpy's buffered Lemire, 32 bits)."""
        if n == 1:
            return 0  # numpy draws nothing for a range of one value
        m = self._next32() * n
        left = m & _MASK32
        if left < n:
            threshold = (0x100000000 - n) % n
            while left < threshold:
                m = self._next32() * n
                left = m & _MASK32
        return m >> 32

    def _interval(self, top: int) -> int:
        """Uniform in ``[0, top]`` for ``top < 2**32`` (numpy's ``random_interval``: masked
        rejection, what ``Generator.shuffle`` and ``permutation`` use)."""
        if top == 0:
            return 0
        mask = top
        for shift in (1, 2, 4, 8, 16):
            mask |= mask >> shift
        while True:
            value = self._next32() & mask
            if value <= top:
                return value

    def integers(self, low: int, high: int | None = None) -> int:
        if high is None:
            low, high = 0, low
        n = int(high) - int(low)
        if not 1 <= n < 0x100000000:
            raise ValueError(f"BoundedInts: range [{low}, {high}) must hold 1 to 2**32 - 1 values")
        return int(low) + self._below(n)

    def integers_each(self, highs) -> list[int]:
        return [self.integers(int(h)) for h in highs]

    def permutation(self, n: int) -> list[int]:
        if not 0 <= n <= 0x100000000:
            raise ValueError(f"BoundedInts.permutation: n must be in [0, 2**32], got {n}")
        out = list(range(n))
        for i in range(n - 1, 0, -1):
            j = self._interval(i)
            out[i], out[j] = out[j], out[i]
        return out

    def distinct(self, low: int, high: int, size: int) -> list[int]:
        pop = int(high) - int(low)
        if not 0 <= size <= pop <= 10_000:
            raise ValueError("BoundedInts.distinct: need 0 <= size <= high - low <= 10000")
        idx: list[int] = []
        seen: set[int] = set()
        for j in range(pop - size, pop):
            val = self._below(j + 1)
            if val in seen:
                val = j
            seen.add(val)
            idx.append(val)
        for i in range(size - 1, 0, -1):
            j = self._below(i + 1)
            idx[i], idx[j] = idx[j], idx[i]
        return [int(low) + v for v in idx]

    def close(self) -> None:
        """Set the generator to the state the replaced numpy calls would have left."""
        if self._closed:
            return
        self._closed = True
        self._bitgen.state = self._start
        if self._consumed:
            self._bitgen.random_raw(self._consumed)
        state = self._bitgen.state
        state["has_uint32"] = self._has32
        state["uinteger"] = self._cached
        self._bitgen.state = state
        self._raw, self._pos, self._has32 = [], 0, 0  # any later draw raises
