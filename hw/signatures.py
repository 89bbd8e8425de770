"""The port bundles that more than one block has, each defined once as a ``wiring.Signature``.

As in amaranth-soc, a bundle is described from the side that drives it (its members ``Out``);
the other side takes ``In(signature)`` (``signature.flip()``), and the two are joined with
``wiring.connect`` -- one driver to any number of receivers (the central control unit to
every PE). Widths come from :class:`hw.params.HWParams`; docs/hardware.md names the ports.
"""

from __future__ import annotations

from amaranth.hdl import Shape, ShapeCastable, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .params import COUNTER_BITS, HWParams, RdMem, WrMem


def write_signature(addr_bits: int, shape: ShapeCastable | Shape | int,
                    nonzero: bool = False) -> wiring.Signature:
    """A write into one memory (from the writer's side): ``en``, ``addr``, ``data``; the data
    reaches the memory in the next cycle. Every host-loaded memory has one.

    ``nonzero``: the write also carries ``nonzero`` (``data != 0``), which the writer computes
    a register stage ahead of the write, so that a reader acting on it (the activation files'
    non-zero lists) needs no compare between the write's registers and its memory's enable."""
    members = {"en": Out(1), "addr": Out(addr_bits), "data": Out(shape)}
    if nonzero:
        members["nonzero"] = Out(1)
    return wiring.Signature(members)


def accumulator_signature(params: HWParams) -> wiring.Signature:
    """The arithmetic unit's access to the accumulator file in :class:`hw.activation_rw.ActivationRW`
    (from the arithmetic unit's side): ``rd_data`` is ``acc[rd_addr]`` one cycle later."""
    lb = params.local_bits
    return wiring.Signature({
        "rd_addr": Out(lb),
        "rd_data": In(signed(params.acc_bits)),
        "wr": Out(write_signature(lb, signed(params.acc_bits))),
    })


def control_signature(params: HWParams) -> wiring.Signature:
    """Central control unit -> every PE (from the control unit's side), through a register per
    group of PEs (:class:`hw.central_control.GroupRegister`): the broadcast pair, the running
    layer's parameters and the phase.

    ``wb`` starts as a CLEAR row (``valid`` and ``clear``): after reset the control unit zeroes
    every accumulator (docs/hardware.md, "Reset")."""
    return wiring.Signature({
        "bcast_valid": Out(1),
        "bcast": Out(params.queue_entry),
        "ctl": Out(params.ctl),
        "layer_start": Out(1),
        "compute": Out(1),
        "count_en": Out(1),
        "count_clear": Out(1),
        "wb": Out(params.wb, init={"valid": 1, "clear": 1}),
    })


def status_signature(rooms: int) -> wiring.Signature:
    """PE -> central control unit (from the PE's side), all registered in the PE: bit ``i`` of
    ``room``, its queue has room for ``i + 1`` more pairs (``rooms`` bits: the control unit has
    up to ``rooms - 1`` pairs on their way, ``hw.central_control.ROOM_FLAGS``); it is ``done``
    with the layer's columns."""
    return wiring.Signature({"room": Out(rooms), "done": Out(1)})


def run_members(params: HWParams) -> dict[str, wiring.Member]:
    """Starting a run and watching it (from the accelerator's side): the top level's ports of
    docs/hardware.md, which the central control unit implements."""
    return {
        "start": In(1),
        "first_layer": In(params.layer_bits),
        "n_layers": In(params.n_layers_bits),
        "ready": Out(1),
        "busy": Out(1),
        "done": Out(1),
        "layer": Out(params.layer_bits),
        "cycles": Out(COUNTER_BITS),
        "stall_cycles": Out(COUNTER_BITS),
    }


def host_write_signature(params: HWParams) -> wiring.Signature:
    """The host's write port (from the host's side): lane k of ``data`` for PE k."""
    return wiring.Signature({
        "valid": Out(1),
        "ready": In(1),
        "mem": Out(WrMem),
        "addr": Out(params.wr_addr_bits),
        "pe_mask": Out(params.n_pe),
        "data": Out(params.n_pe * params.lane_bits),
    })


def host_read_signature(params: HWParams) -> wiring.Signature:
    """The host's read-request port (from the host's side)."""
    return wiring.Signature({
        "valid": Out(1),
        "mem": Out(RdMem),
        "addr": Out(params.rd_addr_bits),
    })
