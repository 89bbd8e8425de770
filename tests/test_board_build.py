"""Board builds (hw/board/): the PLL divider search (against Project Trellis' ecppll), the board
top on each supported amaranth-boards platform (elaborated and converted to Verilog, no place
and route), the checked-in constraints, and bad input. The full build (Yosys, nextpnr,
ecppack on the real system) is the slow test at the end."""

from __future__ import annotations

import re

import pytest

from eie.cli import main
from hw.board import build as board_build
from hw.board.pll import F_PFD_MHZ, F_VCO_MHZ, TOLERANCE, PLLSetting, ecp5_pll
from hw.board.top import board
from hw.fpga.tools import run_tool
from sw.errors import EIEError

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

