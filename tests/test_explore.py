"""Design-space exploration (sw/eie/explore.py, sim/explore.py, `eie explore`): the cycle and
energy models per point agree with sw.eie.cycles / sw.eie.energy, deeper queues are never
slower, the resource fit and the Fmax interpolation, Pareto fronts, the command's outputs and
its one-line errors. Synthesis itself (Yosys, cached) is the slow test."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from eie.cli import main
from hw.timing import rtl_timing
from sim.explore import WorkloadSpec, explore, read_synth, synth_task
from sim.farm import open_farm
from sw.eie import explore as ex
from sw.eie.config import PRESETS
from sw.eie.cycles import simulate_network
from sw.eie.energy import layer_energy
from sw.eie.fixedpoint import quantize_input
from sw.eie.pack import pack_network
from sw.errors import DataError

BASE = PRESETS["tiny"]


def test_parse_list_ranges_and_errors():
    assert ex.parse_list("1..4,8, 16", "--pe") == [1, 2, 3, 4, 8, 16]
    for bad in ("0", "4..2", "x", ""):
        with pytest.raises(DataError, match="--pe"):
            ex.parse_list(bad, "--pe", 1, 256)
    assert ex.parse_clocks("100,50") == [50.0, 100.0]
    with pytest.raises(DataError, match="--clock"):
        ex.parse_clocks("fast")


def test_evaluate_equals_the_cycle_and_energy_models():
    w = ex.builtin_workload("lenet300", seed=3)
    (layers, x), = w.segments
    figs = ex.evaluate(w, BASE, 4, [1, 2, 8], rtl_timing(BASE.replace(n_pe=4)))
    assert [f.queue_depth for f in figs] == [1, 2, 8]
    cycles = [f.cycles for f in figs]
    assert cycles[0] >= cycles[1] >= cycles[2]  # a deeper queue is never slower
    cfg = ex.sized_config(BASE, 4, 2, layers)
    image = pack_network(layers, cfg)
    net = simulate_network(image, quantize_input(x, cfg), rtl_timing(cfg), queue_depth=2)
    assert figs[1].cycles == net.cycles
    # energy: the layers' energies with the memories as deep as the workload needs
    assert figs[0].energy_uj == figs[2].energy_uj > 0
    use = image.memory_usage()
    assert figs[0].usage["ptr_depth"] == use["ptr"]["used"] == 784 + 300 + 100 + 3


def test_evaluate_cycles_match_simulate_layer_layer_by_layer():
    w = ex.builtin_workload("lenet300", seed=1)
    w = ex.Workload("ip1", [(w.segments[0][0][:1], w.segments[0][1])])
    (layers, x), = w.segments
    timing = rtl_timing(BASE.replace(n_pe=16))
    (f,) = ex.evaluate(w, BASE, 16, [8], timing)
    cfg = ex.sized_config(BASE, 16, 8, layers)
    image = pack_network(layers, cfg)
    from sw.eie.cycles import simulate_layer

    r = simulate_layer(image, 0, image.input_to_physical(quantize_input(x, cfg)), timing)
    assert f.cycles == r.cycles
    assert f.energy_uj > 0 and abs(f.efficiency - r.lower_bound / r.compute_cycles) < 1e-12
    tight = image.memory_usage()["spmat"]["used"]
    import dataclasses

    e = layer_energy(dataclasses.replace(image, config=cfg.replace(spmat_words=tight)), 0, r)
    assert f.energy_uj == pytest.approx(e.total / 1e6)


def test_fits_compares_needs_with_the_memories():
    usage = {"spmat_words": 200, "ptr_depth": 1187, "act_depth": 49, "bias_depth": 27,
             "layers": 3}
    p = ex.Point(16, 8, 256, 2048, 64, 128, 100.0)
    assert ex.fits(p, usage, BASE)
    assert not ex.fits(ex.Point(16, 8, 256, 2048, 32, 128, 100.0), usage, BASE)
    assert not ex.fits(p, {**usage, "layers": 5}, BASE)


def _synth(n: int, q: int, lut: int, bram: int, fmax: float | None) -> ex.Synthesised:
    return ex.Synthesised(ex.Point(n, q, 256, 512, 64, 128, 100.0),
                          {"LUT4": lut, "FF": lut // 2, "MULT18X18D": 2 * n, "DP16KD": bram},
                          fmax, "nextpnr", True, "report.json")


def test_resource_fit_and_fmax_interpolation():
    synth = [_synth(n, 8, 500 + 2000 * n, 7 * n, f) for n, f in ((1, 120.0), (4, 100.0),
                                                                   (16, 60.0))]
    (fit,) = ex.fit_resources(synth).values()
    assert not fit.with_queue
    assert fit.coef["LUT4"] == pytest.approx([500.0, 2000.0])
    assert fit.predict(8, 2) == {"LUT4": 16500, "FF": 8250, "MULT18X18D": 16, "DP16KD": 56}
    assert ex.fmax_estimate(synth, 2) == pytest.approx(110.0)  # halfway in log2 N
    assert ex.fmax_estimate(synth, 64) == 60.0 and ex.fmax_estimate(synth, 1) == 120.0
    # points at two queue depths: the N log2(q) term
    synth += [_synth(4, 2, 500 + 2000 * 4 - 4 * 10 * 2, 28, None)]
    (fit,) = ex.fit_resources(synth).values()
    assert fit.with_queue and "N log2(q)" in fit.describe()


def _row(lut: int, bram: int, cycles: float, energy: float) -> ex.Row:
    return ex.Row(ex.Point(1, 1, 1, 2, 1, 1, 100.0), "w", cycles, 1.0, energy, True,
                  {"LUT4": lut, "FF": 0, "MULT18X18D": 0, "DP16KD": bram}, "nextpnr", None,
                  "none")


def test_pareto_fronts():
    rows = [_row(1000, 7, 1000, 1.0), _row(2000, 14, 500, 1.1), _row(2000, 14, 600, 0.9),
            _row(3000, 7, 400, 2.0), _row(4000, 28, 450, 3.0)]
    speed = ex.pareto(rows, "speed")
    assert [(r.resources["LUT4"], r.cycles) for r in speed] == \
        [(1000, 1000), (2000, 500), (3000, 400)]
    energy = ex.pareto(rows, "energy")
    assert [r.energy_uj for r in energy] == [1.0, 0.9]
    # equal figures: only the cheaper point (smaller queue) stays on the front
    twin = _row(1000, 7, 1000, 1.0)
    twin.point = dataclasses.replace(twin.point, queue_depth=8)
    assert twin not in ex.pareto(rows + [twin], "speed")
    fronts = ex.mark_fronts(rows)
    assert fronts["w"]["speed"] == speed and rows[0].front == ["speed", "energy"]
    assert rows[4].front == []


def test_explore_joins_synthesis_and_estimates(tmp_path, monkeypatch):
    """The join with synthesised points given (a real synthesis is the slow test): exact
    points take the synthesis, the others the fit; fronts and outputs are written."""
    from sim import explore as sx

    base = BASE
    mem = (256, 512, 64, 128)
    real = [_synth(n, 4, 500 + 2000 * n, 7 * n, 100.0 / n ** 0.1) for n in (1, 4)]

    def recorded(point, *args):  # the synthesis results of `real`, by N
        return next(s for s in real if s.point.n_pe == point.n_pe)

    monkeypatch.setattr(sx, "synth_task", recorded)
    with open_farm(workers=0) as farm:
        res = explore([WorkloadSpec(name="lenet300")], base, [1, 2, 4], [1, 4], [mem],
                      [100.0], [1, 4], [4], farm, log=lambda m: None)
    kinds = {(r.point.n_pe, r.point.queue_depth): r.resources_from for r in res.rows}
    assert kinds[(1, 4)] == kinds[(4, 4)] == "nextpnr"
    assert kinds[(2, 4)] == kinds[(2, 1)] == "estimate"
    r2 = next(r for r in res.rows if r.point.n_pe == 2)
    assert r2.resources["LUT4"] == 4500 and r2.fmax_from == "estimate"
    assert res.fronts["LeNet-300-100"]["speed"]
    paths = sx.write_outputs(res, tmp_path, "t", {})
    assert [p.name for p in paths] == ["explore.md", "explore.json", "explore.png"]
    d = json.loads(paths[1].read_text())
    assert len(d["points"]) == 6 and d["pareto"]["LeNet-300-100"]["speed"]
    assert "Pareto front" in paths[0].read_text()
    again, _ = sx.result_from_json(paths[1])  # eie explore --replot: ranked again, the same
    assert [(r.point, r.workload, r.resources, r.front) for r in again.rows] == \
        [(r.point, r.workload, r.resources, r.front) for r in res.rows]


def test_command_cycle_model_only(tmp_path, capsys):
    rc = main(["explore", "--config", "tiny", "--networks", "lenet300", "--pe", "1,8",
               "--queue", "2,8", "--workers", "0", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0 and "no synthesised point" in out
    d = json.loads((tmp_path / "explore.json").read_text())
    assert len(d["points"]) == 4
    cycles = {(p["n_pe"], p["queue_depth"]): p["cycles"] for p in d["points"]}
    assert cycles[(8, 8)] < cycles[(1, 8)]


@pytest.mark.parametrize("argv,msg", [
    (["--pe", "0"], "--pe"),
    (["--networks", "VGG-99"], "unknown network"),
    (["--queue", "2..1"], "--queue"),
    (["--inputs", "x.npz"], "--inputs needs --model"),
    (["--networks", "none"], "nothing to explore"),
])
def test_command_bad_input_is_one_line(argv, msg, capsys):
    rc = main(["explore", "--workers", "0", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and msg in err[0], err


@pytest.mark.slow
def test_synthesis_is_cached(tmp_path):
    p = ex.Point(1, 2, 256, 512, 64, 128, 100.0)
    a = synth_task(p, BASE, pnr=False, cache=str(tmp_path))
    b = synth_task(p, BASE, pnr=False, cache=str(tmp_path))
    assert not a.cached and b.cached and a.resources == b.resources
    assert a.resources["LUT4"] > 1000 and a.resources["DP16KD"] >= 1
    again = read_synth(p, next(tmp_path.glob("n1q2-*/report.json")), True)
    assert again.resources == a.resources
    assert np.isfinite(a.resources["FF"])


def test_failed_synthesis_keeps_its_log_and_names_the_signal(tmp_path, monkeypatch):
    from hw.fpga.tools import ToolError
    from sw.errors import EIEError

    def crash(config, out, **kw):  # a tool killed by SIGBUS half-way through its log
        out.mkdir(parents=True)
        (out / "yosys_ecp5.log").write_text("Using template ... for cells of type $alu.\n")
        raise ToolError("yosys", -7, out / "yosys_ecp5.log")

    monkeypatch.setattr("hw.fpga.flow.synthesize_config", crash)
    p = ex.Point(1, 2, 256, 512, 64, 128, 100.0)
    with pytest.raises(EIEError) as e:
        synth_task(p, BASE, pnr=False, cache=str(tmp_path))
    msg = str(e.value)
    assert "yosys failed (killed by SIGBUS)" in msg and "$alu" in msg
    (failed,) = tmp_path.glob("n1q2-*.failed")
    assert str(failed / "yosys_ecp5.log") in msg and (failed / "yosys_ecp5.log").exists()
    assert not list(tmp_path.glob(".tmp-*")) and not list(tmp_path.glob("n1q2-*/report.json"))


def test_a_failed_synthesis_point_is_reported_and_the_sweep_completes(tmp_path, monkeypatch,
                                                                      capsys):
    from hw.fpga.tools import ToolError

    def crash(config, out, **kw):
        out.mkdir(parents=True)
        (out / "yosys_ecp5.log").write_text("ERROR: out of luck\n")
        raise ToolError("yosys", -7, out / "yosys_ecp5.log")

    monkeypatch.setattr("hw.fpga.flow.synthesize_config", crash)
    monkeypatch.setattr("sim.explore.SYNTH_CACHE", tmp_path / "synth")
    rc = main(["explore", "--config", "tiny", "--networks", "lenet300", "--pe", "1,8",
               "--queue", "2", "--synth", "1", "--no-pnr", "--workers", "0",
               "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert rc == 1 and "1 task(s) failed" in err
    assert "killed by SIGBUS" in out and "ERROR: out of luck" in out
    d = json.loads((tmp_path / "out" / "explore.json").read_text())
    # every point still has its cycles (the synthesised point is N=1 at tiny's queue depth 4)
    assert len(d["points"]) == 3 and all(p["cycles"] > 0 for p in d["points"])
