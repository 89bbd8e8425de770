"""Verilog generation: determinism, the documented interface, Verilator lint/build/run, the
ROM (memory initialisation) option and the `eie verilog` command."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers_eie import chain, random_layer

from hw import host
from hw.params import HWParams
from hw.timing import rtl_timing
from hw.top import EIE
from hw.verilog import generate, strip_zero_memory_init
from sim import verilator_harness
from sim.amaranth_host import run_program
from sw.eie import cycles, fixedpoint, golden
from sw.eie.config import PRESETS, EIEConfig
from sw.eie.pack import pack_network

TINY = PRESETS["tiny"]
DOCS = Path(__file__).resolve().parent.parent / "docs" / "hardware.md"
needs_toolchain = pytest.mark.skipif(
    shutil.which("make") is None or shutil.which("g++") is None,
    reason="Verilator builds need make and g++")


def _ports(text: str, module: str) -> dict[str, tuple[str, int]]:
    body = text[text.index(f"module {module}("):]
    body = body[:body.index("endmodule")]
    out = {}
    for d, hi, name in re.findall(r"^\s+(input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);", body, re.M):
        out[name] = (d, int(hi or 0) + 1)
    return out


def test_verilog_is_deterministic_and_emits_the_pe_once():
    cfg = TINY.replace(n_pe=5)
    a, b = generate(cfg), generate(cfg)
    assert a.text == b.text
    assert a.text.count("module eie_pe(") == 1
    assert len(re.findall(r"^\s+eie_pe pe\d+ \(", a.text, re.M)) == 5
    assert "initial begin" not in a.text  # all-zero memory initialisation stripped
    assert "/work" not in a.text and "src =" not in a.text  # no source locations
    assert "verilator no_inline_module" in a.text


def test_each_group_of_four_pes_has_a_control_register_of_its_own():
    # 9 PEs: groups 0-3, 4-7, 8; each a module of its own (synthesis keeps them apart) whose
    # outputs (the broadcast pair and every other control signal) go to its group's PEs only
    text = generate(TINY.replace(n_pe=9)).text
    regs = re.findall(r"^module \\eie\.group(\d+) \(", text, re.M)
    assert sorted(regs) == ["0", "1", "2"]
    top = text[text.index("module eie("):]
    top = top[:top.index("endmodule")]
    for port in ("bcast", "compute", "layer_start", "ctl", "wb"):
        nets = []
        for k in range(9):
            inst = re.search(rf"^\s+eie_pe pe{k} \((.*?)\);", top, re.M | re.S).group(1)
            nets.append(re.search(rf"\.control__{port}\((.*?)\)", inst).group(1))
        assert len(set(nets)) == 3, port
        assert all(nets[k] == nets[4 * (k // 4)] for k in range(9)), port


def test_top_level_ports_are_the_documented_ones():
    cfg64 = TINY.replace(n_pe=64)
    p = HWParams(cfg64)
    ports = _ports(generate(TINY).text, "eie")
    table = DOCS.read_text().split("## Top-level ports")[1].split("###")[0]
    documented = set()
    for cell in re.findall(r"^\| (`[^|]+`) \|", table, re.M):
        documented |= set(re.findall(r"`(\w+)`", cell))
    assert documented == set(ports)
    # widths of the wide host buses at 64 PEs
    ports64 = _ports(generate(cfg64).text, "eie")
    assert ports64["wr__data"] == ("input", 64 * p.lane_bits)
    assert ports64["rd_resp__data"] == ("output", 64 * p.rd_lane_bits)
    assert ports64["wr__pe_mask"] == ("input", 64)


def test_strip_zero_memory_init_keeps_rom_contents():
    text = ("  reg [7:0] m [1:0];\n  initial begin\n    m[0] = 8'h00;\n    m[1] = 8'h00;\n  end\n"
            "  reg [7:0] \\r  [1:0];\n  initial begin\n    \\r [0] = 8'h00;\n    \\r [1] = 8'h1a;\n"
            "  end\n")
    out, n = strip_zero_memory_init(text)
    assert n == 1 and "m[0]" not in out and "\\r [1] = 8'h1a;" in out


@needs_toolchain
def test_verilator_lints_the_generated_verilog_without_warnings(tmp_path):
    for n_pe in (1, 6):
        v = tmp_path / f"eie{n_pe}.v"
        v.write_text(generate(TINY.replace(n_pe=n_pe)).text)
        assert verilator_harness.lint(v, "eie", tmp_path / f"lint{n_pe}") == []


def _verilator_layer_run(cfg: EIEConfig, img, x_phys: np.ndarray, workdir: Path):
    p = HWParams(cfg)
    v = workdir / "eie.v"
    v.write_text(generate(cfg).text)
    built = verilator_harness.build(v, "eie", workdir)
    out = verilator_harness.run(built.exe, p, host.load_program(p, img)
                                + host.inference_program(p, img, x_phys, 0, 1), workdir)
    ((_, y),), (c,), (span,) = out.outputs, out.counters, out.spans
    assert span.done_cycle - span.start_cycle == c.cycles
    return y, c


@needs_toolchain
def test_verilated_design_is_bit_and_cycle_exact_on_a_random_layer(tmp_path):
    rng = np.random.default_rng(21)
    cfg = TINY.replace(n_pe=6, queue_depth=2)
    img = pack_network([random_layer(rng, 60, 70, 0.3, "fc", scale=0.5, relu=True)], cfg)
    x = fixedpoint.quantize_input(rng.normal(0, 2, 70) * (rng.random(70) < 0.4), cfg)
    y, c = _verilator_layer_run(cfg, img, x, tmp_path)
    assert np.array_equal(y, golden.run_layer(img, 0, x))
    rep = cycles.simulate_layer(img, 0, x, rtl_timing(cfg))
    assert (c.cycles, c.stall_cycles) == (rep.cycles, rep.stall_cycles)
    assert np.array_equal(c.busy, rep.busy)


@pytest.mark.slow
@needs_toolchain
def test_eie64_verilog_lints_builds_and_runs_alex8_bit_and_cycle_exact(tmp_path):
    from sw.eie.benchlayers import bench_input, bench_layer

    cfg = PRESETS["eie64"]
    v = tmp_path / "eie.v"
    v.write_text(generate(cfg).text)
    assert verilator_harness.lint(v, "eie", tmp_path / "lint") == []
    img = pack_network([replace(bench_layer("Alex-8"), relu=True)], cfg)
    x = img.input_to_physical(fixedpoint.quantize_input(bench_input("Alex-8"), cfg))
    y, c = _verilator_layer_run(cfg, img, x, tmp_path)
    assert np.array_equal(y, golden.run_layer(img, 0, x))
    rep = cycles.simulate_layer(img, 0, x, rtl_timing(cfg))
    assert (c.cycles, c.stall_cycles) == (rep.cycles, rep.stall_cycles)
    assert np.array_equal(c.busy, rep.busy)
    assert c.cycles <= 7920  # EIE's measured Alex-8 latency at 64 PEs (Table IV)


def test_rom_build_computes_without_loading_the_image():
    rng = np.random.default_rng(22)
    img = pack_network(chain(rng, [20, 16, 8], 0.5, scale=0.5), TINY)
    p = HWParams(TINY)
    dut = EIE(TINY, pe_inits=host.pe_inits(img), layer_init=host.layer_table(p, img))
    x = fixedpoint.quantize_input(rng.normal(0, 1, 20), TINY)
    out = run_program(dut, host.rom_program(p, img, img.input_to_physical(x)))
    ((_, y),) = out.outputs
    assert np.array_equal(img.to_logical(1, y), golden.run_network(img, x)[1])
    g = generate(TINY, image=img)
    assert g.pe_module is None and "initial begin" in g.text  # the images are in the file


def test_eie_verilog_command_writes_the_file_and_rejects_bad_names(tmp_path, capsys):
    from eie.cli import main

    out = tmp_path / "eie.v"
    assert main(["verilog", "--config", "tiny", "--name", "eie_t", "--out", str(out)]) == 0
    text = out.read_text()
    assert "module eie_t(" in text and "module eie_t_pe(" in text
    assert main(["verilog", "--config", "tiny", "--name", "3bad", "--out", str(out)]) == 2
    assert "not a Verilog identifier" in capsys.readouterr().err


def test_eie_verilog_device_elaborates_for_the_part_and_refuses_an_unknown_one(tmp_path, capsys):
    from eie.cli import main

    out = tmp_path / "eie_ecp5.v"
    assert main(["verilog", "--config", "tiny", "--device", "LFE5U-85F", "--out", str(out)]) == 0
    assert '.REG_OUTPUT_CLK("CLK0")' in out.read_text()  # hw.dsp's MULT18X18D
    capsys.readouterr()
    assert main(["verilog", "--config", "tiny", "--device", "XC7A35T", "--out", str(tmp_path / "x.v")]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown device 'XC7A35T'" in err and "\n" not in err
    assert not (tmp_path / "x.v").exists()
