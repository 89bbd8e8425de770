"""Run a :class:`sim.job.Job` on a built design and return what the RTL did.

    design = eie_design(config)            # sim.design: generate + build once
    result = run_job(design, Job([case]))  # one simulator process for every case
    assert result.ok, result.first_failure.message
"""

from __future__ import annotations

import itertools
import os
import shutil
import time

from .coverage import record_coverage
from .job import Job, JobResult, load, save
from .runner import Design

TEST_MODULE = "sim.tb_eie"
_ids = itertools.count()


def run_job(design: Design, job: Job, quiet: bool = True, keep: bool = False) -> JobResult:
    """Replay ``job`` in one simulator process. A failed check is returned (``result.ok`` is
    False, the localised mismatch in ``result.first_failure.message``); a simulator that dies
    without a result raises. ``quiet`` keeps the simulator's log in ``sim.log`` of the run
    directory, which is removed afterwards unless the job failed, ``keep`` or waves are on."""
    run_dir = design.build_dir / "runs" / f"{os.getpid()}-{next(_ids)}-{time.time_ns() % 10**9}"
    run_dir.mkdir(parents=True)
    job_file, result_file = run_dir / "job.pkl", run_dir / "result.pkl"
    save(job, job_file)
    env = {"EIE_SIM_JOB": str(job_file), "EIE_SIM_RESULT": str(result_file),
           "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "WARNING"),
           # pytest-style assertion rewriting of the test module only: the default ("*.py")
           # rewrites numpy, scipy and amaranth on every start (seconds per simulator launch)
           "COCOTB_REWRITE_ASSERTION_FILES": "tb_eie.py"}
    err = None
    try:
        design.run(TEST_MODULE, env=env, test_dir=run_dir / "sim", quiet=quiet)
    except AssertionError as e:
        err = e
    if not result_file.exists():
        log = run_dir / "sim" / "sim.log"
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:]) if log.exists() else ""
        raise RuntimeError(f"the simulation ended without a result ({err}); log {log}:\n{tail}")
    result: JobResult = load(result_file)
    record_coverage(job, result)  # when EIE_COVERAGE names a file (sim.coverage)
    if err is not None and result.ok:
        raise RuntimeError(f"cocotb reported a failure the result does not show: {err}")
    if result.ok and not keep and not design.waves:
        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        result.run_dir = str(run_dir)
    return result
