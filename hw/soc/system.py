"""The accelerator as a system behind a UART: :class:`System` = :class:`hw.soc.bridge.UARTBridge`
driving the Wishbone front end :class:`hw.soc.frontend.EIEBus` (the EIE inside).

This is what a board top wraps (:class:`hw.board.top.BoardTop` adds the PLL, the reset button,
the pins and the LEDs) and what the whole-system simulation runs (sim/tb_board.py):
``rx``/``tx`` are the UART's pins (``rx`` is synchronised inside), ``ready``/``busy``/``done``
the accelerator's status for LEDs. With ``image``, the EIE's memories and layer table start out
holding it (a ROM build: the host only writes inputs, starts and reads outputs).
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sw.eie.config import EIEConfig
from sw.eie.pack import NetworkImage

from .. import host
from ..params import HWParams
from .bridge import UARTBridge
from .frontend import EIEBus

__all__ = ["System", "generate"]

STATUS = ("ready", "busy", "done")


class System(wiring.Component):
    """UART (``rx``, ``tx``) -> :class:`UARTBridge` -> Wishbone -> :class:`EIEBus` for
    ``config``, clocked by ``sync`` at ``clk_freq`` Hz with the line at ``baud``.
    ``bridge_options``: :class:`UARTBridge`'s keyword arguments (``gap_bytes``, ``max_words``,
    ``bus_timeout``, ``classic``); ``pe_module``: as :class:`hw.top.EIE`. ``ready``, ``busy``,
    ``done``: the front end's status outputs (STATUS's bits)."""

    def __init__(self, config: EIEConfig, *, clk_freq: float, baud: float,
                 image: NetworkImage | None = None, pe_module: str | None = None,
                 **bridge_options):
        self.config = config
        core_args = {}
        if image is not None:
            params = HWParams(config)
            host.check_image(params, image)
            core_args = dict(pe_inits=host.pe_inits(image),
                             layer_init=host.layer_table(params, image))
        self.eie = EIEBus(config, pe_module=pe_module, **core_args)
        self.regmap = self.eie.regmap
        self.bridge = UARTBridge(clk_freq, baud, addr_width=self.regmap.addr_width,
                                 **bridge_options)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1),
                          **{name: Out(1) for name in STATUS}})

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = bridge = self.bridge
        m.submodules.eie = eie = self.eie
        wiring.connect(m, bridge.bus, eie.bus)
        m.d.comb += [bridge.rx.eq(self.rx), self.tx.eq(bridge.tx)]
        m.d.comb += [getattr(self, name).eq(getattr(eie, name)) for name in STATUS]
        return m


def generate(config: EIEConfig, clk_freq: float, baud: float, name: str = "eie_system",
             **bridge_options):
    """Verilog of :class:`System` as module ``name``, the PE emitted once as ``<name>_pe``
    (as :func:`hw.verilog.generate` does for the bare core)."""
    from ..pe import PE
    from ..verilog import Generated, _no_inline, convert, header

    pe_name = f"{name}_pe"
    pe_text = _no_inline(convert(PE(HWParams(config)), pe_name), pe_name)
    system = System(config, clk_freq=clk_freq, baud=baud, pe_module=pe_name, **bridge_options)
    top_text = convert(system, name)
    b = system.bridge
    head = (header(config, name) + f"// UART bridge: {clk_freq / 1e6:g} MHz clock, {baud:g} baud "
            f"(divisor {b.divisor}), frames of up to {b.max_words} words, gap {b.gap_bytes} "
            f"byte times; Wishbone front end, register map hash "
            f"{system.regmap.config_hash:#010x}\n")
    return Generated(head + pe_text + top_text, name, pe_name)
