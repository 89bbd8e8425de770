"""cocotb testbench of the generated EIE: replays a :class:`sim.job.Job` and checks it.

Run through :func:`sim.session.run_job` (which writes the job file and names it in
``EIE_SIM_JOB``; the result goes to ``EIE_SIM_RESULT``). For every case, the programs of
:mod:`hw.host` played by :class:`sim.driver.EIEDriver`: reset and load the image, then every
run: write the input, start, wait for ``done``, read the outputs of the run's last two layers
(both activation banks) and the counters. Checks, all exact:

- outputs == the golden model (:mod:`sw.eie.golden`), bit for bit;
- ``cycles``, ``stall_cycles`` and every PE's busy counter == the cycle model (:mod:`sw.eie.cycles`).

The first mismatch is localised before the test fails (:func:`diagnose`): the layer (each layer
of a chain re-run alone on its golden input), the output row (physical and logical, PE and
local row), the input column whose inclusion first makes the row differ (binary search over
prefixes of the non-zero inputs in broadcast order) and the cycles at which, by the timing
contract, that column was broadcast and the row written back.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cocotb
import numpy as np

from hw import host
from hw.params import HWParams
from hw.timing import rtl_timing
from sw.eie.balance import inverse_permutation
from sw.eie.cycles import simulate_layer
from sw.eie.golden import run_layer
from sw.eie.pack import NetworkImage

from .driver import EIEDriver, Stalls
from .job import Case, CaseResult, Job, JobResult, Run, RunResult, load, save


def cycle_limit(image: NetworkImage, run: Run) -> int:
    """Generous bound on a run's cycles (a hang is reported, not waited for forever)."""
    if run.model_cycles:
        return 2 * sum(run.model_cycles) + host.RUN_LIMIT
    return host.run_limit(image, run.layers)


async def execute(drv: EIEDriver, image: NetworkImage, x: np.ndarray, first: int, n: int,
                  limit: int) -> tuple[dict[int, np.ndarray], host.Counters, host.RunSpan]:
    """Write ``x``, run layers ``first .. first + n - 1``, read the last two layers' outputs
    (both activation banks) and the counters."""
    out = await drv.run(host.inference_program(drv.p, image, x, first, n, read_back=2,
                                               limit=limit))
    return dict(out.outputs), out.counters[0], out.spans[0]


def _describe_row(image: NetworkImage, li: int, p: int) -> str:
    n_pe = image.config.n_pe
    perm = image.layers[li].perm
    logical = p if perm is None else int(inverse_permutation(perm)[p])
    return f"row {logical} (physical {p}: PE {p % n_pe}, local row {p // n_pe})"


def _describe_col(image: NetworkImage, li: int, j: int) -> str:
    perm = image.in_perm(li)
    logical = j if perm is None else int(inverse_permutation(perm)[j])
    return f"column {logical}" + ("" if perm is None else f" (physical {j})")


async def diagnose(drv: EIEDriver, case: Case, run: Run, outs: dict[int, np.ndarray],
                   start_cycle: int) -> str:
    """Localise an output mismatch of ``run`` (the image still loaded): layer, row, column,
    cycle. ``start_cycle``: the simulation cycle in which the run's ``start`` was taken."""
    image = case.image
    timing = rtl_timing(image.config)
    inputs = [run.x] + run.expect[:-1]  # each layer's golden input
    # 1. the first layer that is wrong on its own golden input
    li = None
    offset = 0  # cycles of the run before layer li (the model's; layers run back to back)
    for idx, lj in enumerate(run.layers):
        if run.n_layers == 1:
            got = outs[lj]
        else:
            got, _, _ = await execute(drv, image, inputs[idx], lj, 1, cycle_limit(image, run))
            got = got[lj]
        if not np.array_equal(got, run.expect[idx]):
            li, x, want, layer_out = lj, inputs[idx], run.expect[idx], got
            break
        offset += run.model_cycles[idx] if run.model_cycles else 0
    if li is None:
        bad = [lj for idx, lj in enumerate(run.layers) if lj in outs
               and not np.array_equal(outs[lj], run.expect[idx])]
        return (f"run {run.label!r}: layer(s) {bad} differ in the chain but every layer is "
                f"right when run alone on its golden input (a layer-to-layer hand-over fault)")
    d = image.layers[li]
    diff = np.flatnonzero(layer_out != want)
    p = int(diff[0])  # written back first: lowest local row, then lowest PE
    msg = [f"run {run.label!r}, layer {d.name} (table index {li}): {diff.size} of {d.n_out} "
           f"outputs differ; first: {_describe_row(image, li, p)} RTL {int(layer_out[p])} "
           f"!= golden {int(want[p])}"]
    # 2. the column: smallest prefix of the non-zero inputs (broadcast order) that breaks row p
    nz = np.flatnonzero(x)
    limit = cycle_limit(image, run)

    async def row_wrong(k: int) -> bool:
        xk = np.zeros_like(x)
        xk[nz[:k]] = x[nz[:k]]
        got, _, _ = await execute(drv, image, xk, li, 1, limit)
        return int(got[li][p]) != int(run_layer(image, li, xk)[p])

    if await row_wrong(0):
        msg.append("wrong even with no input (bias / write-back path)")
    else:
        lo, hi = 0, nz.size  # row_wrong(lo) is False, row_wrong(hi) is True
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if await row_wrong(mid):
                hi = mid
            else:
                lo = mid
        j = int(nz[hi - 1])
        rep = simulate_layer(image, li, x, timing)
        e = image.ptr[p % image.config.n_pe, d.ptr_base + j + 1] - \
            image.ptr[p % image.config.n_pe, d.ptr_base + j]
        msg.append(f"first wrong once {_describe_col(image, li, j)} (non-zero input {hi} of "
                   f"{nz.size}, a = {int(x[j])}, {int(e)} entries in PE {p % image.config.n_pe}) "
                   f"is included; by the timing contract it was broadcast in cycle "
                   f"{offset + int(rep.broadcast_cycle[hi - 1])} of the run")
    rep = simulate_layer(image, li, x, timing)
    wb = offset + int(rep.finish.max(initial=timing.start)) + timing.drain + \
        timing.writeback_per_row * (p // image.config.n_pe)
    msg.append(f"row written back in cycle {wb} of the run (simulation cycle "
               f"{start_cycle + wb})")
    return "; ".join(msg)


async def diagnose_cycles(drv: EIEDriver, case: Case, run: Run, c: host.Counters) -> str:
    """Localise a counter mismatch: re-run each layer alone and compare it with the model."""
    image = case.image
    busy = run.model_busy.sum(axis=0)
    head = (f"run {run.label!r}: RTL cycles {c.cycles} / stalls {c.stall_cycles}, cycle model "
            f"{sum(run.model_cycles)} / {sum(run.model_stalls)}")
    if not np.array_equal(c.busy, busy):
        k = int(np.flatnonzero(c.busy != busy)[0])
        head += f"; PE {k} busy RTL {int(c.busy[k])} model {int(busy[k])}"
    inputs = [run.x] + run.expect[:-1]
    for idx, li in enumerate(run.layers):
        _, cl, _ = await execute(drv, image, inputs[idx], li, 1, cycle_limit(image, run))
        mb = run.model_busy[idx]
        if (cl.cycles, cl.stall_cycles) != (run.model_cycles[idx], run.model_stalls[idx]) \
                or not np.array_equal(cl.busy, mb):
            k = np.flatnonzero(cl.busy != mb)
            pe = f"; first PE with other busy cycles: {int(k[0])} (RTL {int(cl.busy[k[0]])}, " \
                 f"model {int(mb[k[0]])})" if k.size else ""
            return (f"{head}. Alone, layer {image.layers[li].name}: RTL {cl.cycles} cycles / "
                    f"{cl.stall_cycles} stalls, model {run.model_cycles[idx]} / "
                    f"{run.model_stalls[idx]}{pe}")
    return head + ". Every layer matches the model when run alone (a hand-over difference)"


def read_access_counters(dut, n_pe: int) -> dict[str, np.ndarray]:
    """The access counters inside every PE instance (:data:`hw.pe.ACCESS_COUNTERS`) now."""
    from hw.params import COUNTER_BITS
    from hw.pe import ACCESS_COUNTERS

    raw = [int(getattr(dut, f"pe{k}").n_access.value.to_unsigned()) for k in range(n_pe)]
    mask = (1 << COUNTER_BITS) - 1
    return {name: np.array([(v >> (i * COUNTER_BITS)) & mask for v in raw], np.int64)
            for i, name in enumerate(ACCESS_COUNTERS)}


async def run_case(drv: EIEDriver, case: Case, job: Job) -> CaseResult:
    image = case.image
    drv.stalls = None if case.stall_seed is None else \
        Stalls(np.random.default_rng(case.stall_seed), p=case.stall_p)
    t_case = time.perf_counter()
    await drv.run(host.reset_program(drv.p))
    t = time.perf_counter()
    load = host.image_load(drv.p, case.loaded)
    await drv.run([load])
    res = CaseResult(case.name, [], len(load.writes), time.perf_counter() - t)
    for run in case.runs:
        reset_ports = (None, None)
        if run.reset_after is not None:  # abort a run by reset, then the protocol from the top
            await drv.run([host.input_load(drv.p, image, run.x),
                           host.Start(run.first_layer, run.n_layers), host.Idle(run.reset_after)])
            reset_ports = drv.sample_run_ports()  # what the reset interrupts (coverage)
            await drv.run([*host.reset_program(drv.p), load])
        outs, c, span = await execute(drv, image, run.x, run.first_layer, run.n_layers,
                                      cycle_limit(image, run))
        rr = RunResult(outs, c.cycles, c.stall_cycles, c.busy, span.start_cycle, span.done_cycle,
                       span.wall_s, span.cpu_s, reset_busy=reset_ports[0],
                       reset_layer=reset_ports[1])
        if os.environ.get("EIE_SIM_ACCESS"):  # a build with access counters (sim.access)
            rr.access = read_access_counters(drv.dut, drv.p.n_pe)
        res.runs.append(rr)
        wrong = [li for idx, li in enumerate(run.layers)
                 if li in outs and not np.array_equal(outs[li], run.expect[idx])]
        if wrong:
            rr.ok = res.ok = False
            res.message = await diagnose(drv, case, run, outs, span.start_cycle) if job.diagnose else \
                f"run {run.label!r}: outputs of layer(s) {wrong} differ from the golden model"
        elif job.check_cycles and run.model_cycles and (
                c.cycles != sum(run.model_cycles) or c.stall_cycles != sum(run.model_stalls)
                or not np.array_equal(c.busy, run.model_busy.sum(axis=0))):
            rr.ok = res.ok = False
            res.message = await diagnose_cycles(drv, case, run, c) if job.diagnose else \
                f"run {run.label!r}: RTL cycles {c.cycles}, model {sum(run.model_cycles)}"
        if not res.ok:
            res.message = f"case {case.name}: {res.message}"
            break
    res.wall_s = time.perf_counter() - t_case
    if drv.stalls is not None:
        res.host_gaps = dict(drv.stalls.inserted)
    return res


@cocotb.test()
async def eie_job(dut) -> None:
    """Every case and run of the job in ``EIE_SIM_JOB``; results to ``EIE_SIM_RESULT``."""
    job: Job = load(Path(os.environ["EIE_SIM_JOB"]))
    out = Path(os.environ["EIE_SIM_RESULT"])
    config = job.cases[0].image.config
    params = HWParams(config)
    width = len(dut.wr__data)
    if width != params.n_pe * params.lane_bits:
        raise AssertionError(f"the design's write bus is {width} bits; config {config.name!r} "
                             f"needs {params.n_pe * params.lane_bits}")
    drv = EIEDriver(dut, params)
    result = JobResult()
    t = time.perf_counter()
    for case in job.cases:
        if case.image.config != config:
            raise AssertionError(f"case {case.name}: image for another configuration")
        try:
            cr = await run_case(drv, case, job)
        except Exception as e:  # a hang, X on a port, a dropped response: this case fails
            cr = CaseResult(case.name, [], 0, 0.0, ok=False,
                            message=f"case {case.name}: {type(e).__name__}: {e}")
        result.cases.append(cr)
        if not cr.ok:
            dut._log.error(cr.message)
            if job.stop_on_fail:
                break
    result.wall_s = time.perf_counter() - t
    save(result, out)
    failed = result.first_failure
    assert failed is None, failed.message
