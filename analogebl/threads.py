"""Thread control: how many threads BLAS, OpenMP, numba and torch may use, and when.

A 2-core machine is rarely idle. Thread pools that are sized for an idle machine collapse
when another process takes a core: every parallel region waits for the worker that is not
running, and spinning workers steal the cycles the running ones need (measured on main before
this module: ``dhn_mnist`` relaxation fell to 0.03-0.3 of its unloaded rate beside one busy
process). The policy here:

1. **One budget per run.** ``threads`` (study key, ``--threads N``) is the number of threads a
   run may use; ``"auto"`` means the cores this process may run on (affinity mask and cgroup
   quota) that are not already busy with other work when the run starts (sampled from
   ``/proc/stat``), divided among the workers of a pool. The budget is fixed for the whole
   run and recorded in the run file, because BLAS sums in a different order with another
   thread count: a resumed run reuses its recorded budget, so resume stays bit-exact.
2. **Per operation size.** An operation smaller than :data:`SMALL_OP_MACS` multiply-adds
   (GEMM) or :data:`SMALL_OP_ELEMENTS` elements (numba kernels) runs on one thread: splitting
   it costs more in hand-offs than it saves, and under load each hand-off can wait a whole
   scheduler time slice. The choice depends only on shapes and the budget, so results stay
   deterministic for a given budget.
3. **No spinning pools.** Before the libraries load, :func:`quiet_spinning_defaults` sets
   OpenBLAS's idle-thread timeout and GNU OpenMP's spin count low (only where the user has not
   set them), so idle workers sleep instead of burning a core another process needs.

Workers x threads never exceeds the cores: the local pool divides the budget among its
workers; Dask tasks get an explicit budget (one thread unless ``threads`` says otherwise).
"""

from __future__ import annotations

import math
import os
import sys
import time
from functools import cache

__all__ = [
    "SMALL_OP_ELEMENTS",
    "SMALL_OP_MACS",
    "ThreadBudget",
    "available_cores",
    "busy_cores",
    "current",
    "for_elements",
    "for_macs",
    "parse_threads",
    "quiet_spinning_defaults",
    "refresh_blas",
    "resolve_threads",
    "set_threads",
    "settle",
]

#: GEMMs below this many multiply-adds run on one thread (128x512x10 is 0.66 M; the DCHN
#: x0.25 convolution GEMMs are 28-150 M; dhn_deep at batch 256 is 268 M).
SMALL_OP_MACS = 8_000_000
#: numba elementwise / pooling kernels below this many elements run on one thread.
SMALL_OP_ELEMENTS = 1 << 18

#: Environment defaults that make idle pool workers sleep instead of spin. OpenBLAS reads
#: ``OPENBLAS_THREAD_TIMEOUT`` (2**n cycles, n in 4..30; default 28, ~0.1 s of spinning);
#: GNU OpenMP (torch's pool) reads ``GOMP_SPINCOUNT`` (default 300k spins when
#: ``OMP_WAIT_POLICY`` is unset). Both only when the library loads.
SPIN_DEFAULTS = {"OPENBLAS_THREAD_TIMEOUT": "4", "GOMP_SPINCOUNT": "2000"}

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def quiet_spinning_defaults(environ=os.environ) -> None:
    """Set :data:`SPIN_DEFAULTS` where unset (and where the user chose no wait policy).

    Effective only before NumPy's BLAS / torch's OpenMP runtime load; ``analogebl`` calls it
    first thing on import, so the CLI and ``import analogebl`` before ``numpy`` get it.
    """
    for key, value in SPIN_DEFAULTS.items():
        if key == "GOMP_SPINCOUNT" and "OMP_WAIT_POLICY" in environ:
            continue
        environ.setdefault(key, value)


def _cgroup_cpus() -> float | None:
    """CPUs allowed by a cgroup v2 (``cpu.max``) or v1 (``cfs_quota_us``) quota, if any."""
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int(open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read())
        period = int(open("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read())
        if quota > 0 and period > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


@cache
def available_cores() -> int:
    """Cores this process may run on: the affinity mask, capped by a cgroup CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = _cgroup_cpus()
    if quota is not None:
        n = min(n, max(1, math.floor(quota)))
    return max(1, n)


def _cpu_times() -> tuple[int, int] | None:
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]), idle


def busy_cores(interval_s: float = 0.25) -> float:
    """Cores kept busy by other processes, averaged over ``interval_s`` (``/proc/stat``;
    0 where it cannot be read). This process is asleep while it samples."""
    a = _cpu_times()
    if a is None:
        return 0.0
    time.sleep(interval_s)
    b = _cpu_times()
    if b is None or b[0] <= a[0]:
        return 0.0
    total, idle = b[0] - a[0], b[1] - a[1]
    n = os.cpu_count() or 1
    return max(0.0, n * (total - idle) / total)


def parse_threads(value, where: str = "threads") -> int | None:
    """``"auto"``/``None`` -> ``None``; a positive integer -> itself; else ConfigError."""
    from analogebl.errors import ConfigError

    if value is None or value == "auto":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"expected a positive integer or 'auto', got {value!r}", key=where)
    try:
        n = int(value)
    except ValueError:
        raise ConfigError(
            f"expected a positive integer or 'auto', got {value!r}", key=where
        ) from None
    if n < 1:
        raise ConfigError(f"expected a positive integer or 'auto', got {value!r}", key=where)
    return n


def resolve_threads(value="auto", workers: int = 1, busy: float | None = None) -> int:
    """The thread budget of one run: ``value`` if it is a number, else (``"auto"``) the
    free cores ``available_cores() - round(busy)`` divided among ``workers``, at least 1.

    ``$ANALOGEBL_THREADS`` (a number) stands in for ``"auto"`` where set.
    """
    n = parse_threads(value)
    if n is not None:
        return n
    env = os.environ.get("ANALOGEBL_THREADS")
    if env:
        return parse_threads(env, "ANALOGEBL_THREADS")
    cores = available_cores()
    if busy is None:
        busy = busy_cores()
    free = max(1, cores - round(min(busy, cores - 1)))
    return max(1, free // max(1, workers))


class ThreadBudget:
    """The process-wide thread budget and the per-operation counts derived from it.

    Counts are only pushed to a library when they change (a ctypes call of ~3 us), so
    switching per operation is cheap.
    """

    def __init__(self) -> None:
        self.threads: int | None = None  # None: the libraries' own defaults
        self._blas_now: int | None = None
        self._numba_now: int | None = None

    @property
    def budget(self) -> int:
        return self.threads if self.threads is not None else available_cores()

    @staticmethod
    @cache
    def _blas():
        from threadpoolctl import ThreadpoolController

        return [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]

    def blas(self, n: int) -> None:
        if n != self._blas_now:
            for lib in self._blas():
                lib.set_num_threads(n)
            self._blas_now = n

    def numba(self, n: int) -> None:
        if n != self._numba_now:
            import numba

            numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
            self._numba_now = n


_BUDGET = ThreadBudget()


def refresh_blas() -> None:
    """Collect the BLAS libraries again: one loaded after the first throttle (scipy's
    OpenBLAS, which numba's ``np.dot`` calls) then follows the policy too. The next
    :func:`for_macs` pushes its count to every library."""
    ThreadBudget._blas.cache_clear()
    _BUDGET._blas_now = None


def set_threads(n: int) -> int:
    """Limit every pool of this process to ``n`` threads: BLAS and OpenMP (threadpoolctl),
    numba, torch (intra-op; inter-op where still allowed). Also exported as
    ``OMP_NUM_THREADS`` etc. so that child processes start with the same budget.
    Returns ``n``."""
    from threadpoolctl import threadpool_limits

    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    threadpool_limits(n)
    # children (process pools) start with the same budget; NUMBA_NUM_THREADS stays: numba
    # refuses a different value once its pool is up
    os.environ.update({k: str(n) for k in _THREAD_VARS if k != "NUMBA_NUM_THREADS"})
    _BUDGET.threads = n
    _BUDGET._blas_now = n
    _BUDGET._numba_now = None
    _BUDGET.numba(n)
    if "torch" in sys.modules:
        _set_torch_threads(n)
    return n


def _set_torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:  # only allowed before the first parallel work
        pass


def current() -> int:
    """The thread budget now in force (the available cores until :func:`set_threads`)."""
    return _BUDGET.budget


def for_macs(macs: float) -> int:
    """Use the right BLAS thread count for a GEMM of ``macs`` multiply-adds; returns it."""
    n = 1 if macs < SMALL_OP_MACS else _BUDGET.budget
    _BUDGET.blas(n)
    return n


def for_elements(elements: int) -> int:
    """Use the right numba thread count for a kernel over ``elements`` items; returns it."""
    n = 1 if elements < SMALL_OP_ELEMENTS else _BUDGET.budget
    _BUDGET.numba(n)
    return n


def settle() -> None:
    """Put BLAS and numba back on the full budget. A training loop calls it at the start of
    every step, so operations outside the backend (optimizers, device models) always see the
    same thread count at the same point, uninterrupted or resumed."""
    _BUDGET.blas(_BUDGET.budget)
    _BUDGET.numba(_BUDGET.budget)


def torch_budget() -> None:
    """Apply the budget to torch (called when the torch backend is created)."""
    if _BUDGET.threads is not None:
        _set_torch_threads(_BUDGET.threads)
