"""The task farm (sim/farm.py) and fuzz campaigns on it: in this process, on Dask worker
threads, on two Dask worker processes (the same results as in-process), a worker killed in the
middle of a campaign (its task retried, the report says so) and a planted mismatch (the report
names its seed and the command that reproduces it). Small builds (n1d1, n2d2), a few seeds."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest

from sim.farm import Ref, Task, open_farm
from sim.fuzz import fuzz_case, plan_seeds, plant_fault, run_fuzz
from sim.runner import have_simulator, simulator
from sw.errors import DataError, EIEError

SMALL = ["n1d1", "n2d2"]


def add(a: int, b: int) -> int:
    return a + b


def flaky(path: str, value: int) -> int:
    """Fails on its first call (a marker file says it ran), then returns ``value``."""
    if not os.path.exists(path):
        open(path, "w").close()
        raise RuntimeError("first attempt fails")
    return value


def broken() -> None:
    raise RuntimeError("always fails")


def bad_input() -> None:
    raise DataError("the user's input is wrong")


def test_in_process_farm_resolves_refs_retries_and_reports(tmp_path):
    with open_farm(workers=0, retries=1) as farm:
        out = farm.run([Task("a", add, (1, 2), "a"),
                        Task("b", add, (Ref("a"), 10), "b"),
                        Task("f", flaky, (str(tmp_path / "m"), 7), "flaky task"),
                        Task("x", broken, (), "broken task"),
                        Task("y", add, (Ref("x"), 1), "after broken")])
        assert [o.value for o in out[:3]] == [3, 13, 7]
        assert out[2].retried and len(out[2].attempts) == 2 and out[2].ok
        assert not out[3].ok and len(out[3].attempts) == 2 and "always fails" in out[3].error
        assert not out[4].ok and "depends on failed task x" in out[4].error
        lines = "\n".join(farm.lines())
    assert "retried flaky task: attempt 1 on in-process" in lines
    assert "raised RuntimeError: first attempt fails" in lines
    assert re.search(r"finished on in-process \(pid \d+, attempt 2\)", lines), lines
    assert "retried broken task" in lines and "failed for good" in lines


def test_user_error_is_not_retried():
    with open_farm(workers=0, retries=3) as farm:
        (o,) = farm.run([Task("u", bad_input, (), "u")])
    assert o.user_error and len(o.attempts) == 1 and "wrong" in o.error


def test_dask_thread_workers_run_the_same_tasks(tmp_path):
    with open_farm(workers=2, processes=False, retries=1) as farm:
        assert farm.n_workers == 2
        out = farm.run([Task("a", add, (1, 2), "a"), Task("b", add, (Ref("a"), 10), "b"),
                        Task("f", flaky, (str(tmp_path / "m"), 7), "flaky"),
                        Task("u", bad_input, (), "u")])
        assert [o.value for o in out[:3]] == [3, 13, 7]
        assert out[2].retried and out[2].attempts[0].worker.startswith(("tcp://", "inproc://"))
        assert out[3].user_error and len(out[3].attempts) == 1
        assert any("retried flaky" in line and "raised RuntimeError" in line
                   for line in farm.lines())


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(EIEError, match="--workers must be >= 0"):
        open_farm(workers=-1)
    with pytest.raises(EIEError, match="no Dask scheduler file"):
        open_farm(scheduler="/nonexistent/scheduler.json")
    with pytest.raises(DataError, match="unknown fuzz build"):
        plan_seeds(4, 0, ["n9d9"])
    with pytest.raises(DataError, match="at least one case"):
        plan_seeds(0, 0, None)


sim_only = pytest.mark.skipif(not have_simulator(simulator()),
                              reason=f"simulator {simulator()} not installed")


@pytest.fixture(scope="module")
def two_workers():
    """Two Dask worker processes on this machine (a LocalCluster)."""
    farm = open_farm(workers=2, retries=1)
    yield farm
    farm.close()


def _plantable(seeds: list[int]) -> int:
    """The first of ``seeds`` whose case can carry a visible planted fault."""
    for s in seeds:
        try:
            plant_fault(fuzz_case(s), s)
            return s
        except DataError:
            continue
    raise AssertionError(f"no seed of {seeds} takes a visible fault")


@sim_only
def test_fuzz_on_two_workers_equals_in_process_and_names_the_planted_seed(two_workers):
    plan = plan_seeds(6, 300, SMALL)
    planted = _plantable(plan["n2d2"])
    local = run_fuzz(6, 300, SMALL, log=lambda m: None, planted=(planted,))
    farmed = run_fuzz(6, 300, SMALL, log=lambda m: None, chunk=2, farm=two_workers,
                      planted=(planted,))
    # the same per-seed results as in this process (the planted seed fails in both)
    assert local.per_config == farmed.per_config
    assert sum(n for _, n in farmed.per_config.values()) == 6
    assert local.failures == farmed.failures and planted in [s for s, _ in farmed.failures]
    text = "\n".join(farmed.lines())
    assert f"FAIL seed {planted} (reproduce: eie sim --fuzz 1 --seed {planted} " \
           f"--plant-fault {planted}): " in text
    msg = dict(farmed.failures)[planted]
    assert "outputs differ" in msg and "RTL" in msg and "golden" in msg, msg
    assert "Dask LocalCluster, 2 worker process(es); 6 task(s)" in text  # 2 builds + 4 chunks


def _executing_fuzz(dask_worker) -> list[str]:
    return [ts.key for ts in dask_worker.state.executing if str(ts.key).startswith("fuzz-")]


@sim_only
def test_worker_killed_mid_campaign_is_retried_and_reported(two_workers):
    farm = two_workers
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault(
        "rep", run_fuzz(4, 400, SMALL, log=lambda m: None, chunk=1, farm=farm)))
    thread.start()
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline and thread.is_alive():
        busy = farm.client.run(_executing_fuzz)
        pids = farm.workers()
        victim = next((pids[w] for w, keys in busy.items() if keys and w in pids), None)
        if victim is None:
            time.sleep(0.05)
    assert victim is not None, "no fuzz task seen executing"
    os.kill(victim, signal.SIGKILL)
    thread.join(300)
    rep = box["rep"]
    # every case ran to a verdict (a failure here would be the RTL's, not the farm's)
    assert rep.cases == 4 and not [m for _, m in rep.failures if "not run" in m], rep.lines()
    text = "\n".join(rep.farm)
    assert "was lost during the run" in text
    assert "retried fuzz" in text and "lost with its worker" in text and "finished on" in text
    # only what ran on the killed worker is retried: not the tasks finished before
    assert all(f"(pid {victim})" in line for line in text.splitlines() if "retried" in line)


@sim_only
def test_regression_rows_and_shards_on_workers_equal_one_process(two_workers):
    """A `make sim`-style table: one row whose many inputs run as shards on the workers, one
    single-input row; the merged rows equal the one-process run, inputs in order."""
    import numpy as np
    from helpers_eie import chain

    from sim.fuzz import FUZZ_CONFIGS
    from sim.regress import _entry, regression
    from sw.eie.pack import pack_network

    config = FUZZ_CONFIGS["n2d2"]
    rng = np.random.default_rng(5)
    layers = chain(rng, [20, 12, 6], 0.4)
    image = pack_network(layers, config)
    xs = rng.integers(-256, 512, (7, 20)) * (rng.random((7, 20)) < 0.5)
    entries = [_entry("many", image, layers, xs, None, "many", golden_batch=True),
               _entry("one", image, layers, xs[:1], None, "one")]
    local = regression(config, entries, log=lambda m: None)
    farmed = regression(config, entries, log=lambda m: None, farm=two_workers, shard=3)
    assert farmed.ok == local.ok
    assert local.ok, "the RTL failed in this process: see tests/test_sim_eie.py"
    for a, b in zip(local.rows, farmed.rows, strict=True):
        assert [r.cycles for r in a.result.runs] == [r.cycles for r in b.result.runs]
        assert all(np.array_equal(ra.outputs[k], rb.outputs[k]) for ra, rb in
                   zip(a.result.runs, b.result.runs, strict=True) for k in ra.outputs)
    assert len(farmed.rows[0].result.runs) == 7
    assert any("5 task(s)" in line for line in farmed.farm)  # the build, 3 shards, 1 row
