"""The task farm: verification and exploration work as self-contained tasks on Dask distributed.

A :class:`Task` is a module-level function and its arguments (a configuration and seeds, or
a case with its expectations, in; a result record out), so it runs the same in this process,
on a :class:`distributed.LocalCluster` of this machine, or on any Dask cluster
(``dask scheduler`` + ``dask worker`` processes, dask-jobqueue on Slurm / PBS / LSF: see
docs/verification.md, "Running on many workers")::

    with open_farm(workers=2) as farm:          # workers=0: in this process, no Dask
        outcomes = farm.run([Task("a", fn, (1,), "a"), Task("b", fn, (Ref("a"),), "b")])

``Ref(key)`` in a task's arguments is the value of an earlier task of the same :meth:`Farm.run`
(a dependency: a build before the chunks that use it). A task that raises is retried
(``retries``, Dask's ``retries=``); a task whose worker dies is rescheduled by Dask's scheduler
on another worker (up to ``distributed.scheduler.allowed-failures`` times). Every attempt
announces its start as a Dask event (:meth:`distributed.Worker.log_event`) before it computes,
so the farm knows afterwards which tasks started more than once and on which workers, even when
the worker of an attempt is gone: :meth:`Farm.lines` reports them.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sw.errors import EIEError

Log = Callable[[str], None]
LARGE_ARG = 256 * 1024  # pickled arguments above this go to the workers once (Client.scatter)


@dataclass(frozen=True)
class Ref:
    """The value of the task ``key`` (an earlier task of the same :meth:`Farm.run`)."""

    key: str


@dataclass
class Task:
    key: str  # unique within one Farm.run; readable (it is the Dask key, with a run suffix)
    fn: Callable[..., Any]  # a module-level function (workers import it by name)
    args: tuple = ()
    label: str = ""  # what the report calls it ("fuzz n3d4 seeds 2..140")
    priority: int = 0  # higher first (Dask's priority=)


@dataclass
class Attempt:
    worker: str  # Dask worker address ("in-process" without Dask)
    host: str
    pid: int
    started: float  # time.time()
    error: str | None = None  # the attempt raised this (else, if not the last: it was lost)


@dataclass
class Outcome:
    task: Task
    value: Any = None
    error: str | None = None  # the task failed for good (after its retries)
    user_error: bool = False  # the error is the user's input (sw.errors.EIEError): not retried
    attempts: list[Attempt] = field(default_factory=list)  # every start, in order
    worker: str | None = None  # where the attempt that finished ran
    pid: int | None = None
    wall_s: float = 0.0  # the finishing attempt's compute time

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def retried(self) -> bool:
        return len(self.attempts) > 1


@dataclass
class _Done:
    value: Any
    worker: str
    host: str
    pid: int
    wall_s: float
    user_error: str | None = None  # an EIEError the task raised (the input's fault: no retry)


def _here() -> tuple[str, Any]:
    try:
        from distributed import get_worker

        w = get_worker()
        return w.address, w
    except (ImportError, ValueError):
        return "in-process", None


def _execute(topic: str | None, key: str, fn: Callable, *args) -> _Done:
    """What a worker runs: announce the attempt, compute, say where and how long."""
    where, worker = _here()
    host, pid = socket.gethostname(), os.getpid()
    if worker is not None and topic:
        worker.log_event(topic, {"key": key, "worker": where, "host": host, "pid": pid,
                                 "started": time.time()})
    args = tuple(a.value if isinstance(a, _Done) else a for a in args)  # a Ref's value
    t = time.perf_counter()
    try:
        value = fn(*args)
    except EIEError as e:
        return _Done(None, where, host, pid, time.perf_counter() - t, str(e))
    except Exception as e:
        if worker is not None and topic:  # this attempt raised (Dask retries it): say so
            worker.log_event(topic, {"key": key, "worker": where, "pid": pid,
                                     "error": f"{type(e).__name__}: {e}"})
        raise
    return _Done(value, where, host, pid, time.perf_counter() - t)


def _resolve(args: tuple, done: dict[str, Any]) -> tuple:
    return tuple(done[a.key] if isinstance(a, Ref) else a for a in args)


class Farm:
    """Runs tasks: in this process (``client`` None) or on a Dask cluster."""

    def __init__(self, client=None, cluster=None, description: str = "in-process",
                 retries: int = 2, log: Log | None = None):
        self.client = client
        self.cluster = cluster
        self.description = description
        self.retries = retries
        self.log = log or (lambda m: None)
        self.last: list[Outcome] = []
        self.lost_workers: list[str] = []
        self.wall_s = 0.0

    # -- life cycle -------------------------------------------------------------------------
    def __enter__(self) -> Farm:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None

    @property
    def n_workers(self) -> int:
        if self.client is None:
            return 1
        return len(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def workers(self) -> dict[str, int]:
        """Worker address -> process id (what a test kills to lose a worker)."""
        if self.client is None:
            return {"in-process": os.getpid()}
        return self.client.run(os.getpid)

    # -- running ----------------------------------------------------------------------------
    def run(self, tasks: list[Task], progress: Callable[[Outcome, int, int], None] | None = None
            ) -> list[Outcome]:
        """Run ``tasks`` (``Ref`` arguments: values of earlier tasks of the list) and return
        their outcomes in the same order; a task that fails for good has ``error`` set (its
        dependants fail too) and the others still run."""
        keys = [t.key for t in tasks]
        if len(set(keys)) != len(keys):
            raise EIEError("farm: task keys must be unique")
        t0 = time.perf_counter()
        outcomes = self._run_local(tasks, progress) if self.client is None else \
            self._run_dask(tasks, progress)
        self.wall_s = time.perf_counter() - t0
        self.last = outcomes
        return outcomes

    def _run_local(self, tasks: list[Task], progress) -> list[Outcome]:
        done: dict[str, Any] = {}
        failed: set[str] = set()
        outcomes = []
        for i, t in enumerate(tasks):
            o = Outcome(t)
            deps = [a.key for a in t.args if isinstance(a, Ref)]
            if any(d in failed for d in deps):
                o.error = f"not run: depends on failed task {next(d for d in deps if d in failed)}"
            else:
                for attempt in range(self.retries + 1):
                    o.attempts.append(Attempt("in-process", socket.gethostname(), os.getpid(),
                                              time.time()))
                    try:
                        d = _execute(None, t.key, t.fn, *_resolve(t.args, done))
                    except Exception as e:  # noqa: BLE001 - reported, like a worker's error
                        o.error = o.attempts[-1].error = f"{type(e).__name__}: {e}"
                        if attempt == self.retries:
                            break
                        continue
                    _finish(o, d)
                    break
            if o.ok:
                done[t.key] = o.value
            else:
                failed.add(t.key)
            outcomes.append(o)
            if progress:
                progress(o, i + 1, len(tasks))
        return outcomes

    def _run_dask(self, tasks: list[Task], progress) -> list[Outcome]:
        from distributed import as_completed

        c = self.client
        run = uuid.uuid4().hex[:8]
        topic = f"eie-farm-{run}"
        futures: dict[str, Any] = {}
        by_future = {}
        for t in tasks:
            args = []
            for a in t.args:
                if isinstance(a, Ref):
                    args.append(futures[a.key])
                elif _large(a):
                    args.append(c.scatter(a, hash=False))
                else:
                    args.append(a)
            f = c.submit(_execute, topic, t.key, t.fn, *args, key=f"{t.key}-{run}",
                         retries=self.retries, pure=False, priority=t.priority)
            futures[t.key] = f
            by_future[f.key] = t
        outcomes: dict[str, Outcome] = {}
        for f in as_completed(list(futures.values())):
            t = by_future[f.key]
            o = Outcome(t)
            if f.status == "finished":
                _finish(o, f.result())
            else:
                exc = f.exception()
                o.error = f"{type(exc).__name__}: {exc}" if exc is not None else f.status
            # the result is here: let the cluster forget it (a lost worker then costs no
            # recomputation of finished work; a pending dependant keeps what it needs)
            f.release()
            outcomes[t.key] = o
            if progress:
                progress(o, len(outcomes), len(tasks))
        starts: dict[str, list[Attempt]] = {}
        errors: dict[str, list[dict]] = {}
        for _, msg in c.get_events(topic):
            if "error" in msg:
                errors.setdefault(msg["key"], []).append(msg)
            else:
                starts.setdefault(msg["key"], []).append(
                    Attempt(msg["worker"], msg["host"], msg["pid"], msg["started"]))
        for key, o in outcomes.items():
            o.attempts = sorted(starts.get(key, []), key=lambda a: a.started)
            errs = errors.get(key, [])  # which attempts raised (the others were lost)
            for a in o.attempts:
                mine = [e for e in errs if e["worker"] == a.worker and e["pid"] == a.pid]
                if mine:
                    a.error = mine[0]["error"]
                    errs.remove(mine[0])
        alive = set(self.workers().items())
        seen = {(a.worker, a.pid) for o in outcomes.values() for a in o.attempts}
        self.lost_workers = sorted(f"{w} (pid {p})" for w, p in seen - alive)
        return [outcomes[t.key] for t in tasks]

    # -- reporting --------------------------------------------------------------------------
    def lines(self, outcomes: list[Outcome] | None = None) -> list[str]:
        """Where the tasks ran, which were retried (and why: the worker that was lost or the
        error), which failed for good."""
        outcomes = self.last if outcomes is None else outcomes
        per_worker: dict[str, int] = {}
        for o in outcomes:
            if o.worker:
                per_worker[o.worker] = per_worker.get(o.worker, 0) + 1
        out = [f"farm: {self.description}; {len(outcomes)} task(s) in {self.wall_s:.0f} s"
               + (" (" + ", ".join(f"{w}: {n}" for w, n in sorted(per_worker.items())) + ")"
                  if self.client is not None and per_worker else "")]
        for w in self.lost_workers:
            out.append(f"farm: worker {w} was lost during the run")
        for o in outcomes:
            if not o.retried:
                continue
            first = o.attempts[:-1] if o.ok else o.attempts
            why = ", ".join(f"attempt {i + 1} on {a.worker} (pid {a.pid}) "
                            f"{_fate(o.attempts, i, set(self.lost_workers))}"
                            for i, a in enumerate(first))
            end = f"finished on {o.worker} (pid {o.pid}, attempt {len(o.attempts)})" if o.ok \
                else f"failed for good: {o.error}"
            out.append(f"farm: retried {o.task.label or o.task.key}: {why}; {end}")
        for o in outcomes:
            if not o.ok and not o.retried:
                out.append(f"farm: task {o.task.label or o.task.key} failed: {o.error}")
        return out


def _fate(attempts: list[Attempt], i: int, lost: set[str]) -> str:
    """Why attempt ``i`` was not the last: it raised, its worker ran the task again, its
    worker was lost, or the scheduler moved it."""
    a = attempts[i]
    if a.error:
        return f"raised {a.error}"
    if any((b.worker, b.pid) == (a.worker, a.pid) for b in attempts[i + 1:]):
        return "started again on the same worker"
    if f"{a.worker} (pid {a.pid})" in lost:
        return "lost with its worker"
    return "rescheduled by the scheduler"


def _finish(o: Outcome, d: _Done) -> None:
    o.value, o.worker, o.pid, o.wall_s = d.value, d.worker, d.pid, d.wall_s
    o.error, o.user_error = d.user_error, d.user_error is not None


def raise_user_error(outcomes: list[Outcome]) -> None:
    """Raise the first task's :class:`EIEError` (bad input), as the command would in-process."""
    bad = next((o for o in outcomes if o.user_error), None)
    if bad is not None:
        raise EIEError(bad.error)


def _large(a: Any) -> bool:
    if isinstance(a, (int, float, str, bool, type(None))):
        return False
    try:
        return len(pickle.dumps(a, protocol=pickle.HIGHEST_PROTOCOL)) > LARGE_ARG
    except Exception:  # noqa: BLE001 - not picklable here: let Dask say so
        return False


def open_farm(workers: int | None = None, scheduler: str | None = None, retries: int = 2,
              processes: bool = True, log: Log | None = None) -> Farm:
    """A farm: ``scheduler`` (an address, ``tcp://host:port``, or a scheduler file) connects to
    an existing Dask cluster; else ``workers`` worker processes on this machine (a
    LocalCluster; None: one per core; 0: no Dask, every task in this process).
    ``processes=False`` puts the LocalCluster's workers in threads of this process (tests)."""
    log = log or (lambda m: None)
    if scheduler is None and workers == 0:
        return Farm(description="in-process (no Dask)", retries=retries, log=log)
    if workers is not None and workers < 0:
        raise EIEError(f"--workers must be >= 0, got {workers}")
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise EIEError("Dask distributed is not installed (pip install 'dask[distributed]'); "
                       "--workers 0 runs every task in this process") from None
    if scheduler is not None:
        if scheduler.endswith(".json") and not os.path.isfile(scheduler):
            raise EIEError(f"no Dask scheduler file {scheduler} (dask scheduler "
                           f"--scheduler-file {scheduler} writes it)")
        kw = {"scheduler_file": scheduler} if scheduler.endswith(".json") else \
            {"address": scheduler}
        try:
            client = Client(timeout="20s", **kw)
        except (OSError, TimeoutError, ValueError) as e:
            raise EIEError(f"cannot reach the Dask scheduler {scheduler}: {e}") from None
        n = len(client.scheduler_info(n_workers=-1).get("workers", {}))
        if n == 0:
            log(f"farm: scheduler {scheduler} has no workers yet; waiting for one")
            client.wait_for_workers(1, timeout=120)
            n = len(client.scheduler_info(n_workers=-1).get("workers", {}))
        return Farm(client, None, f"Dask scheduler {scheduler}, {n} worker(s)", retries, log)
    n = workers or os.cpu_count() or 1
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes,
                           dashboard_address=":0", silence_logs=logging.ERROR)
    client = Client(cluster)
    kind = "worker process(es)" if processes else "worker thread(s)"
    log(f"farm: Dask dashboard {client.dashboard_link}")
    return Farm(client, cluster, f"Dask LocalCluster, {n} {kind}", retries, log)


def add_farm_arguments(p) -> None:
    """--workers / --scheduler / --retries (every verb whose work is farm tasks)."""
    p.add_argument("--workers", type=int, metavar="N",
                   help="Dask worker processes on this machine (a LocalCluster; default: one "
                        "per core; 0: no Dask, every task in this process)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="an existing Dask cluster: the scheduler's address (tcp://host:8786) or "
                        "its scheduler file (.json); its workers need this project installed")
    p.add_argument("--retries", type=int, default=2, metavar="N",
                   help="retries of a task that raises (a task whose worker dies is "
                        "rescheduled by Dask on another worker)")


def farm_from_args(args, log: Log | None = None) -> Farm:
    if args.scheduler is not None and args.workers is not None:
        raise EIEError("give --workers (a cluster on this machine) or --scheduler (an existing "
                       "one), not both")
    if args.retries < 0:
        raise EIEError(f"--retries must be >= 0, got {args.retries}")
    return open_farm(args.workers, args.scheduler, args.retries, log=log)


def progress_logger(log: Log, what: str = "task") -> Callable[[Outcome, int, int], None]:
    def progress(o: Outcome, i: int, n: int) -> None:
        where = f" on {o.worker}" if o.worker and o.worker != "in-process" else ""
        state = "done" if o.ok else f"FAILED ({o.error})"
        log(f"[{i}/{n}] {o.task.label or o.task.key}: {state}{where}, {o.wall_s:.1f} s")
    return progress


def chunks(items: Iterable, size: int) -> list[list]:
    items = list(items)
    return [items[i:i + size] for i in range(0, len(items), max(1, size))]
