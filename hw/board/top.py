"""The board top: oscillator -> ECP5 PLL -> the system clock; reset button; UART pins; LEDs.

:class:`BoardTop` wraps a *system* (a component with a UART ``rx`` input, a ``tx`` output and
the accelerator's ``ready`` / ``busy`` / ``done`` status: :class:`hw.soc.system.System`, the
UART bridge driving the EIE's Wishbone front end) for an amaranth-boards platform:

- the board's oscillator (the platform's ``default_clk``) feeds an EHXPLLL
  (:mod:`hw.board.pll`) whose output is the ``sync`` domain at the chosen clock;
- the ``sync`` reset is held while the reset button is pressed or the PLL has not locked
  (asynchronous assertion, release synchronised to the PLL's clock);
- the board's UART (ULX3S: the FTDI chip's) goes to the system's ``rx`` / ``tx`` (the UART
  receiver, :class:`hw.soc.uart.UARTRx`, synchronises ``rx``);
- LEDs show ``ready``, ``busy``, ``done`` and a heartbeat (about 1 Hz: the PLL clock runs).

:data:`BOARDS` lists the supported boards: the platform class, the reset button and which LED
shows what. docs/fpga.md, "Board builds", has the pin table.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from amaranth.hdl import ClockDomain, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import ResetSynchronizer

from sw.errors import EIEError

from .pll import PLLSetting, ecp5_pll, ehxplll

LED_ROLES = ("ready", "busy", "done", "alive")


def _ulx3s_leds(platform) -> dict[str, object]:
    # led 0..7 (B2 C2 C1 D2 D1 E2 E1 H3)
    return {role: platform.request("led", k, dir="-") for role, k in
            (("ready", 0), ("busy", 1), ("done", 2), ("alive", 7))}


def _ecpix5_leds(platform) -> dict[str, object]:
    # four RGB LEDs (active low; the platform's ports invert): 0 green = ready, 1 red = busy,
    # 2 blue = done, 3 green = heartbeat
    return {"ready": platform.request("rgb_led", 0, dir="-").g,
            "busy": platform.request("rgb_led", 1, dir="-").r,
            "done": platform.request("rgb_led", 2, dir="-").b,
            "alive": platform.request("rgb_led", 3, dir="-").g}


@dataclass(frozen=True)
class Board:
    """A board of amaranth-boards and how the top uses its resources."""

    name: str
    platform_class: str  # "module:Class" of amaranth-boards (imported when the board is used)
    reset: str  # the reset button's resource (number 0); pressed = 1 after the platform's inversion
    reset_label: str  # what is printed on the board
    leds: Callable[[object], dict[str, object]]  # platform -> {LED_ROLES: output port}
    led_labels: dict[str, str]
    default_clock_hz: float

    def make_platform(self):
        module, cls = self.platform_class.split(":")
        return getattr(importlib.import_module(module), cls)()


BOARDS: dict[str, Board] = {
    # Radiona ULX3S with the LFE5U-85F: 25 MHz oscillator, FTDI FT231X UART on the USB port
    "ulx3s": Board("ulx3s", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "button_pwr",
                   "PWR (BTN0, D6)", _ulx3s_leds,
                   {"ready": "LED0", "busy": "LED1", "done": "LED2", "alive": "LED7"}, 125e6),
    # LambdaConcept ECPIX-5 with the LFE5UM5G-85F: 100 MHz oscillator, FT2232 channel B UART
    "ecpix5": Board("ecpix5", "amaranth_boards.ecpix5:ECPIX585Platform", "rst",
                    "the reset button (AB1)", _ecpix5_leds,
                    {"ready": "RGB LED 0 green", "busy": "RGB LED 1 red",
                     "done": "RGB LED 2 blue", "alive": "RGB LED 3 green"}, 125e6),
}


def board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise EIEError(f"unknown board {name!r} (supported: {', '.join(BOARDS)})") from None


class BoardTop(wiring.Component):
    """``system`` on ``board`` with its ``sync`` domain at ``clock_hz`` from the PLL.

    ``pll`` is the PLL setting, known once the platform is (:meth:`plan_pll`); elaboration
    needs the platform (``platform.request``). It has no ports: its pins are the board's
    resources, requested from the platform.
    """

    HEARTBEAT_HZ = 1.0

    def __init__(self, board: Board, system, clock_hz: float):
        self.board = board
        self.system = system
        self.clock_hz = clock_hz
        self.pll: PLLSetting | None = None
        super().__init__({})

    def plan_pll(self, platform) -> PLLSetting:
        self.pll = ecp5_pll(platform.default_clk_frequency, self.clock_hz)
        return self.pll

    def elaborate(self, platform) -> Module:
        if platform is None:
            raise EIEError("the board top needs a platform (an amaranth-boards board)")
        m = Module()
        pll = self.plan_pll(platform)

        clk_io = platform.request(platform.default_clk, dir="-")
        m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_io)
        m.domains.sync = sync = ClockDomain("sync")
        locked = Signal(name="pll_locked")
        m.submodules.pll = ehxplll(pll, clk_buf.i, sync.clk, locked)
        # no FREQUENCY for the PLL's output: nextpnr derives it from the oscillator's and the
        # dividers (a net name in the LPF would not survive Yosys' flattening anyway)

        rst_io = platform.request(self.board.reset, 0, dir="-")
        m.submodules.rst_buf = rst_buf = io.Buffer("i", rst_io)
        m.submodules.reset_sync = ResetSynchronizer(rst_buf.i | ~locked, domain="sync")

        m.submodules.system = sys_ = self.system
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [sys_.rx.eq(rx.i), tx.o.eq(sys_.tx)]  # the receiver synchronises rx

        leds = {}
        for role, port in self.board.leds(platform).items():
            m.submodules[f"led_{role}"] = buf = io.Buffer("o", port)
            leds[role] = buf.o
        half = max(2, round(pll.f_out / (2 * self.HEARTBEAT_HZ)))  # cycles per half period
        beat, alive = Signal(range(half), name="heartbeat_count"), Signal(name="heartbeat")
        m.d.sync += beat.eq(beat + 1)
        with m.If(beat == half - 1):
            m.d.sync += [beat.eq(0), alive.eq(~alive)]
        m.d.comb += [leds["ready"].eq(sys_.ready), leds["busy"].eq(sys_.busy),
                     leds["done"].eq(sys_.done), leds["alive"].eq(alive)]
        return m
