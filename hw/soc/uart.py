"""A UART, 8N1: receiver (:class:`UARTRx`) and transmitter (:class:`UARTTx`) clocked by the
``sync`` domain, the bit time a whole number of clock cycles (:func:`divisor`).

Baud error: the divisor is ``round(clk_freq / baud)``, so the line runs at ``clk_freq /
divisor``, off by :func:`baud_error` (25 MHz at 3 Mbaud: divisor 8, +4.2 %, too far; 48 MHz:
16, exact; 100 MHz: 33, +1.0 %; 125 MHz: 42, -0.8 %). The receiver samples each bit at the
middle of its bit time counted from the start bit's falling edge (seen through a 2-flop
synchroniser, so with up to one clock of uncertainty), so the last sample, the stop bit at 9.5
bit times, stays inside its bit while the two ends' rates differ by less than about
``(0.5 - 1 / divisor) / 9.5``: 4.6 % at divisor 16, 3.9 % at divisor 8. :func:`divisor` refuses
more than :data:`MAX_BAUD_ERROR` on this side, which leaves the rest of that budget to the
other end's clock.
"""

from amaranth.hdl import C, Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sw.errors import ConfigError

__all__ = ["MAX_BAUD_ERROR", "UARTRx", "UARTTx", "baud_error", "divisor"]

MAX_BAUD_ERROR = 0.02
MIN_DIVISOR = 4  # clock cycles per bit


def divisor(clk_freq: float, baud: float) -> int:
    """Clock cycles per bit for ``baud`` at ``clk_freq`` Hz (refuses a rate too far off)."""
    if clk_freq <= 0 or baud <= 0:
        raise ConfigError(f"clock {clk_freq} Hz and baud rate {baud} must be positive")
    d = round(clk_freq / baud)
    if d < MIN_DIVISOR:
        raise ConfigError(f"baud rate {baud:g} needs a clock of at least {MIN_DIVISOR} x that "
                          f"({MIN_DIVISOR * baud / 1e6:g} MHz), not {clk_freq / 1e6:g} MHz")
    err = baud_error(clk_freq, baud)
    if abs(err) > MAX_BAUD_ERROR:
        raise ConfigError(f"baud rate {baud:g} from a {clk_freq / 1e6:g} MHz clock: divisor {d} "
                          f"gives {clk_freq / d:.0f} baud ({err:+.1%}); more than "
                          f"{MAX_BAUD_ERROR:.0%} off (choose a clock that is a multiple of the "
                          f"baud rate)")
    return d


def baud_error(clk_freq: float, baud: float) -> float:
    """Relative error of the line's rate ``clk_freq / round(clk_freq / baud)`` against ``baud``."""
    d = max(1, round(clk_freq / baud))
    return clk_freq / d / baud - 1


class UARTRx(wiring.Component):
    """UART receiver, 8N1, ``divisor`` clock cycles per bit.

    ``rx`` is synchronised by two flops. A low level starts a byte; the start bit is checked
    again at its middle (a shorter glitch is ignored), every data bit sampled at its middle, and
    the stop bit: high -> ``valid`` for one cycle with ``data``; low -> ``ferr`` for one cycle (a
    framing error: wrong baud rate, noise or a break), after which the receiver waits for the
    line to go high before it looks for the next start bit.
    """

    rx: In(1, init=1)
    data: Out(8)
    valid: Out(1)
    ferr: Out(1)

    def __init__(self, divisor: int):
        if divisor < MIN_DIVISOR:
            raise ConfigError(f"UART divisor {divisor} < {MIN_DIVISOR}")
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        sync1 = Signal(init=1)
        line = Signal(init=1)
        m.d.sync += [sync1.eq(self.rx), line.eq(sync1)]
        count = Signal(range(d))
        bit = Signal(range(8))
        shift = Signal(8)
        m.d.sync += [self.valid.eq(0), self.ferr.eq(0)]
        m.d.comb += self.data.eq(shift)
        with m.If(count != 0):
            m.d.sync += count.eq(count - 1)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += count.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(count == 0):
                    with m.If(line):
                        m.next = "IDLE"  # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [count.eq(d - 1), bit.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(count == 0):
                    m.d.sync += [shift.eq(Cat(shift[1:], line)),  # LSB first
                                 count.eq(d - 1), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(count == 0):
                    with m.If(line):
                        m.d.sync += self.valid.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += self.ferr.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """UART transmitter, 8N1, ``divisor`` clock cycles per bit; a byte is taken from ``data``
    in a cycle with ``valid & ready`` (``ready``: idle)."""

    tx: Out(1, init=1)
    data: In(8)
    valid: In(1)
    ready: Out(1)

    def __init__(self, divisor: int):
        if divisor < MIN_DIVISOR:
            raise ConfigError(f"UART divisor {divisor} < {MIN_DIVISOR}")
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        shift = Signal(10, init=0x3FF)  # stop, data[7:0], start; sent from bit 0
        left = Signal(range(11))  # bits still to send
        count = Signal(range(d))
        m.d.comb += [self.tx.eq(shift[0]), self.ready.eq(left == 0)]
        with m.If(left == 0):
            with m.If(self.valid):
                m.d.sync += [shift.eq(Cat(C(0, 1), self.data, C(1, 1))),
                             left.eq(10), count.eq(d - 1)]
        with m.Elif(count != 0):
            m.d.sync += count.eq(count - 1)
        with m.Else():
            m.d.sync += [shift.eq((shift >> 1) | (1 << 9)), left.eq(left - 1), count.eq(d - 1)]
        return m
