"""Board builds (hw/board/): the PLL divider search (against Project Trellis' ecppll), the board
top on each supported amaranth-boards platform (elaborated and converted to Verilog, no place
and route), the checked-in constraints, and bad input. The full build (Yosys, nextpnr,
ecppack on the real system) is the slow test at the end."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from eie.cli import main
from hw.board import build as board_build
from hw.board.pll import F_PFD_MHZ, F_VCO_MHZ, TOLERANCE, PLLSetting, ecp5_pll
from hw.board.top import BOARDS, board
from hw.fpga import ecp5
from hw.fpga.report import SynthReport
from hw.fpga.tools import run_tool
from sw.eie.config import EIEConfig
from sw.errors import EIEError, FitError

# -- the PLL ------------------------------------------------------------------------------------


def _ecppll(tmp_path, f_in_mhz: float, f_out_mhz: float) -> dict[str, int]:
    """The dividers Project Trellis' ecppll chooses (yowasp-ecppll)."""
    run_tool("ecppll", ["-i", f"{f_in_mhz:g}", "-o", f"{f_out_mhz:g}", "-f", "pll.v"], tmp_path,
             tmp_path / "ecppll.log")
    text = (tmp_path / "pll.v").read_text()
    return {k: int(v) for k, v in re.findall(r"\.(CLKI_DIV|CLKFB_DIV|CLKOP_DIV)\((\d+)\)", text)}


@pytest.mark.parametrize("f_in, f_out", [(25, 125), (25, 50), (100, 125), (12, 16)])
def test_pll_dividers_are_ecppll_s(tmp_path, f_in, f_out):
    s = ecp5_pll(f_in * 1e6, f_out * 1e6)
    assert {"CLKI_DIV": s.clki_div, "CLKFB_DIV": s.clkfb_div,
            "CLKOP_DIV": s.clkop_div} == _ecppll(tmp_path, f_in, f_out)


@pytest.mark.parametrize("f_in", [25e6, 100e6])
def test_pll_reaches_every_target_from_below_with_the_vco_in_range(f_in):
    for target in [40e6 + 2.5e6 * k for k in range(145)]:  # 40 .. 400 MHz
        s = ecp5_pll(f_in, target)
        assert s.f_out <= target * (1 + 1e-9) and s.error < 0.06 <= TOLERANCE
        assert F_VCO_MHZ[0] <= s.f_vco / 1e6 <= F_VCO_MHZ[1]
        assert F_PFD_MHZ[0] <= s.f_pfd / 1e6 <= F_PFD_MHZ[1]
        assert s.f_out == pytest.approx(f_in / s.clki_div * s.clkfb_div)
        assert 0 <= s.clkop_cphase < s.clkop_div


def test_pll_for_the_boards_default_clocks_is_exact():
    assert ecp5_pll(25e6, 125e6) == PLLSetting(25e6, 125e6, 1, 5, 5)  # ULX3S: VCO 625 MHz
    assert ecp5_pll(100e6, 125e6).f_out == 125e6  # ECPIX-5


@pytest.mark.parametrize("f_in, f_out, message", [
    (5e6, 125e6, "PLL input 5 MHz is outside"),
    (25e6, 500e6, "clock 500 MHz is outside the ECP5 PLL's output range"),
])
def test_pll_out_of_range_is_a_one_line_error(f_in, f_out, message):
    with pytest.raises(EIEError, match=message):
        ecp5_pll(f_in, f_out)


def test_pll_beyond_tolerance_is_refused():
    assert ecp5_pll(25e6, 124.5e6).f_out == pytest.approx(121.875e6)  # 25 / 8 * 39
    with pytest.raises(EIEError, match=r"at most 124\.5 MHz .* 121\.8750 MHz \(2\.11% below, more than 1%"):
        ecp5_pll(25e6, 124.5e6, tolerance=0.01)


# -- boards --------------------------------------------------------------------------------------


def test_unknown_board_is_a_one_line_error():
    with pytest.raises(EIEError, match=r"unknown board 'de0' \(supported: ulx3s, ecpix5\)"):
        board("de0")


def test_board_devices_come_from_the_platforms():
    ulx3s = board_build.device(board("ulx3s").make_platform())
    assert (ulx3s.name, ulx3s.nextpnr_flag, ulx3s.package, ulx3s.dp16kd) == (
        "LFE5U-85F", "--85k", "CABGA381", 208)
    ecpix5 = board_build.device(board("ecpix5").make_platform())
    assert (ecpix5.name, ecpix5.nextpnr_flag, ecpix5.package, ecpix5.lut4) == (
        "LFE5UM5G-85F", "--um5g-85k", "CABGA554", 83640)


def test_cli_unknown_board_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["board", "build", "--board", "de0", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["eie board: error: unknown board 'de0' (supported: ulx3s, ecpix5)"]
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["--clock", "500e6"], "clock 500 MHz is outside the ECP5 PLL's output range"),
    (["--config", "nope"], "no preset or config file named 'nope'"),
    (["--baud", "0"], "--baud 0 needs a clock of at least 4x it"),
])
def test_cli_bad_options_exit_2_with_one_line(tmp_path, capsys, argv, message):
    out = tmp_path / "b"
    assert main(["board", "build", "--board", "ulx3s", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists()



def test_a_model_that_does_not_fit_the_config_is_refused_before_any_build(tmp_path, capsys):
    from helpers_eie import chain

    from sw.compression.modelfile import save_model

    save_model(tmp_path / "m.eie", chain(np.random.default_rng(4), [400, 300], 0.5))
    out = tmp_path / "b"
    assert main(["board", "build", "--board", "ulx3s", "--config", "tiny", "--model",
                 str(tmp_path / "m.eie"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("eie board: error: ")
    assert not out.exists() and not list(tmp_path.glob(".b.*"))


def test_a_design_that_overflows_the_part_is_one_line():
    b = board("ulx3s")
    dev = board_build.device(b.make_platform())
    rep = SynthReport(top="eie_board", sources=[], device=dev, lpf="", target_mhz=125,
                      resources={"LUT4": 10, "FF": 10, "MULT18X18D": 0, "DP16KD": 300},
                      resources_from="yosys", yosys_cells={}, glue={}, modules=[], blocks={},
                      wall_s={})
    board_build.check_fit(rep, b, EIEConfig.load("tiny"), "Yosys")  # no overflow recorded yet
    rep.overflow = ecp5.overflow(rep.resources, {"TRELLIS_DPR16X4": 3000}, dev)
    with pytest.raises(FitError, match=r"^config tiny does not fit the ulx3s's LFE5U-85F: "
                       r"DP16KD 300/208 \(144%\), distributed RAM LUTs 12000/10455 \(115%\) "
                       r"used/available \(Yosys\)$"):
        board_build.check_fit(rep, b, EIEConfig.load("tiny"), "Yosys")


# -- the board top on each board (elaborated and converted, no place and route) ------------------

@pytest.fixture(scope="module", params=sorted(BOARDS))
def plan(request):
    """The build plan of the board top around the system (the constraints' configuration),
    with the Verilog of the whole design."""
    return request.param, board_build.constraints_plan(request.param, debug_verilog=True)


def test_board_top_converts_to_verilog(plan):
    name, p = plan
    v = p.files[f"{board_build.NAME}.debug.v"]
    v = v.decode() if isinstance(v, bytes) else v
    assert f"module {board_build.NAME}(" in v
    pll = ecp5_pll(board(name).make_platform().default_clk_frequency, board(name).default_clock_hz)
    m = re.search(r"EHXPLLL #\((.*?)\) pll \(", v, re.DOTALL)
    assert m, "no EHXPLLL instance"
    params = dict(re.findall(r"\.(\w+)\(([^()]*)\)", m.group(1)))
    assert {k: int(params[k].split("'d")[-1]) for k in ("CLKI_DIV", "CLKFB_DIV", "CLKOP_DIV")} == {
        "CLKI_DIV": pll.clki_div, "CLKFB_DIV": pll.clkfb_div, "CLKOP_DIV": pll.clkop_div}
    lpf = p.files[f"{board_build.NAME}.lpf"]
    lpf = lpf.decode() if isinstance(lpf, bytes) else lpf
    for port in ("uart_0__rx__io", "uart_0__tx__io"):
        assert f'LOCATE COMP "{port}"' in lpf and f"{port}," in v.replace(" ", "") + ","
    osc = board(name).make_platform().default_clk_frequency
    assert re.search(rf'FREQUENCY PORT "\w+" {osc:.1f} HZ;', lpf)  # nextpnr derives the PLL's


def test_checked_in_constraints_are_what_the_platform_writes(plan):
    name, p = plan
    path = board_build.constraints_path(name)
    assert path.read_text() == board_build.constraints_text(name, p), (
        f"{path} is stale: eie board constraints --board {name}")


def _meminit(il: str, module_suffix: str, memid: str) -> tuple[int, list[int]]:
    """(width, words) of the initialisation of memory ``memid`` in the RTLIL module whose name
    ends in ``module_suffix``."""
    mods = re.findall(rf"^module \\(\S*{re.escape(module_suffix)})\n(.*?)^end\n", il, re.M | re.S)
    assert len(mods) == 1, f"{len(mods)} modules named *{module_suffix}"
    m = re.search(rf'cell \$meminit_v2 \S+\n    parameter \\MEMID "\\\\{memid}"\n'
                  rf"(?:    parameter .*\n)*?    parameter \\WIDTH (\d+)\n    parameter \\WORDS (\d+)\n"
                  rf"(?:    .*\n)*?    connect \\DATA \d+'([01]+)\n", mods[0][1])
    assert m, f"no initialisation of {memid} in {mods[0][0]}"
    width, words, bits = int(m.group(1)), int(m.group(2)), int(m.group(3), 2)
    return width, [(bits >> (width * i)) & ((1 << width) - 1) for i in range(words)]


def test_a_model_in_rom_initialises_every_pe_memory_of_the_board_design():
    from helpers_eie import chain

    from hw import host
    from hw.pe import PE
    from sw.eie.pack import pack_network

    config = EIEConfig(name="romtest", n_pe=2, queue_depth=4, spmat_words=64, ptr_depth=128,
                       act_depth=32, bias_depth=32, max_layers=2)
    image = pack_network(chain(np.random.default_rng(3), [40, 24, 10], 0.3, scale=0.2), config)
    b = board("ulx3s")
    system = board_build.make_system(config, b.default_clock_hz, board_build.DEFAULT_BAUD, image)
    _, _, plan = board_build.prepare(b, system, b.default_clock_hz)
    il = plan.files[f"{board_build.NAME}.il"]
    il = il.decode() if isinstance(il, bytes) else il
    for k, init in enumerate(host.pe_inits(image)):
        for stem, (unit, mem) in PE.HOST_LOADED_MEMORIES.items():
            width, words = _meminit(il, f".pe{k}.{unit}", mem)
            want = [v & ((1 << width) - 1) for v in getattr(init, stem)]
            assert any(want) and words[:len(want)] == want and not any(words[len(want):]), (k, stem)


# -- the full build (slow: Yosys, nextpnr, ecppack; minutes) --------------------------------------

@pytest.mark.slow
def test_full_board_build_with_a_model_in_rom(tmp_path, capsys):
    from helpers_eie import chain

    from sw.compression.modelfile import save_model

    save_model(tmp_path / "m.eie", chain(np.random.default_rng(4), [40, 24, 10], 0.3))
    out = tmp_path / "board"
    assert main(["board", "build", "--board", "ulx3s", "--config", "tiny", "--model",
                 str(tmp_path / "m.eie"), "--clock", "60e6", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    r = json.loads((out / "report.json").read_text())
    assert r["board"] == "ulx3s" and r["device"]["name"] == "LFE5U-85F"
    assert r["resources_from"] == "nextpnr" and r["resources"]["DP16KD"]["used"] > 0
    assert r["timing_met"] and r["fmax_system_mhz"] >= 60
    assert r["clock"]["pll"]["f_out_hz"] == 60e6
    bit = out / r["bitstream"]["file"]
    assert bit.stat().st_size == r["bitstream"]["bytes"] > 0
    assert r["model"]["run"]["n_layers"] == 2 and (out / "images" / "manifest.json").is_file()
    assert "placed and routed on its pins" in printed and "bitstream: eie_board.bit" in printed
    assert not list(tmp_path.glob(".board.*"))  # no temporary directory left


@pytest.mark.slow
def test_a_config_that_does_not_fit_the_part_stops_after_yosys(tmp_path, monkeypatch, capsys):
    import dataclasses

    small = dataclasses.replace(BOARDS["ulx3s"], name="ulx3s25",
                                platform_class="amaranth_boards.ulx3s:ULX3S_25F_Platform")
    monkeypatch.setitem(BOARDS, "ulx3s25", small)
    out = tmp_path / "b"
    assert main(["board", "build", "--board", "ulx3s25", "--config", "small", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.match(
        r"eie board: error: config small does not fit the ulx3s25's LFE5U-25F: .*DP16KD \d+/56", err[0])
    assert not out.exists() and not list(tmp_path.glob(".b.*"))


def test_rtlil_no_rw_check_maps_a_host_loaded_memory_without_collision_logic(tmp_path):
    # the board flow reads RTLIL, where Yosys ignores no_rw_check unless told
    # (hw.fpga.ecp5.RTLIL_NO_RW_CHECK): a block RAM with an enabled read port then needs no
    # register and multiplexer per bit after it
    from amaranth.back import rtlil
    from amaranth.hdl import Module
    from amaranth.lib import memory, wiring
    from amaranth.lib.wiring import In, Out

    from hw.fpga import ecp5
    from hw.params import HOST_LOADED_MEMORY

    class Ram(wiring.Component):
        def __init__(self):
            super().__init__({"we": In(1), "wa": In(10), "wd": In(14), "re": In(1),
                              "ra": In(10), "rd": Out(14)})

        def elaborate(self, platform):
            m = Module()
            m.submodules.mem = mem = memory.Memory(shape=14, depth=1024, init=[],
                                                   attrs=HOST_LOADED_MEMORY)
            wp, rp = mem.write_port(), mem.read_port()
            m.d.comb += [wp.en.eq(self.we), wp.addr.eq(self.wa), wp.data.eq(self.wd),
                         rp.en.eq(self.re), rp.addr.eq(self.ra), self.rd.eq(rp.data)]
            return m

    (tmp_path / "ram.il").write_text(rtlil.convert(Ram(), name="ram"))
    ffs = {}
    for label, before in (("plain", ""), ("marked", ecp5.RTLIL_NO_RW_CHECK + "; ")):
        run_tool("yosys", ["-p", f"read_rtlil ram.il; {before}synth_ecp5 -top ram; "
                           f"tee -q -o {label}.json stat -json"], tmp_path, tmp_path / f"{label}.log")
        cells = json.loads((tmp_path / f"{label}.json").read_text())["modules"]["\\ram"]
        ffs[label] = cells["num_cells_by_type"].get("TRELLIS_FF", 0)
        assert cells["num_cells_by_type"]["DP16KD"] == 1
    assert ffs["marked"] == 0 and ffs["plain"] > 14  # the emulation's data and compare registers
