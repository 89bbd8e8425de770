"""cocotb testbench for tests/test_rom.py: runs one input through an EIE Verilog build.

Environment: ``ROM_TB_IMAGES`` (image directory), ``ROM_TB_INPUT`` (JSON list: the physical
integer input vector), ``ROM_TB_LOAD`` ("1": load the images through the host port first, the
run-time-loaded build; "0": the memories already hold them, the ROM build), ``ROM_TB_OUT``
(JSON file the outputs and cycle count are written to). Host protocol: hw/host.py (the same
transactions sim/amaranth_host.py plays in Amaranth's simulator). Signals are driven and sampled
at the falling edge, half a cycle away from the rising edge that registers them.
"""

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from hw import host
from hw.params import HWParams
from sw.eie.images import read_images


async def wait_for(dut, signal, limit: int) -> None:
    for _ in range(limit):
        await FallingEdge(dut.clk)
        if int(signal.value):
            return
    raise TimeoutError(f"{signal._name} not high after {limit} cycles")


async def write(dut, params: HWParams, w: host.HostWrite) -> None:
    dut.wr__mem.value = int(w.mem.value)
    dut.wr__addr.value = w.addr
    dut.wr__pe_mask.value = w.mask
    dut.wr__data.value = w.data(params)
    dut.wr__valid.value = 1
    while not int(dut.wr__ready.value):  # sampled mid-cycle: what the next edge will see
        await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.wr__valid.value = 0


async def read(dut, requests) -> list[int]:
    out = []
    for req in list(requests) + [None, None, None]:
        if req is None:
            dut.rd__valid.value = 0
        else:
            dut.rd__mem.value = int(req[0].value)
            dut.rd__addr.value = req[1]
            dut.rd__valid.value = 1
        await FallingEdge(dut.clk)
        if int(dut.rd_resp__valid.value):
            out.append(int(dut.rd_resp__data.value))
    return out


@cocotb.test()
async def run_network(dut):
    image = read_images(os.environ["ROM_TB_IMAGES"])
    params = HWParams(image.config)
    a_phys = np.asarray(json.loads(os.environ["ROM_TB_INPUT"]), dtype=np.int64)
    for s in ("wr__valid", "rd__valid", "start"):
        getattr(dut, s).value = 0
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for _ in range(3):
        await FallingEdge(dut.clk)
    dut.rst.value = 0
    await wait_for(dut, dut.ready, 100_000)
    if os.environ["ROM_TB_LOAD"] == "1":
        for w in host.image_writes(params, image):
            await write(dut, params, w)
    for w in host.input_writes(params, image, a_phys):
        await write(dut, params, w)
    n_layers = len(image.layers)
    await wait_for(dut, dut.ready, 100_000)
    dut.first_layer.value = 0
    dut.n_layers.value = n_layers
    dut.start.value = 1
    await FallingEdge(dut.clk)
    dut.start.value = 0
    await wait_for(dut, dut.done, 1_000_000)
    cycles = int(dut.cycles.value)
    last = image.layers[-1]
    reqs = host.output_reads(params, host.output_bank(n_layers), last.rows_per_pe)
    out = host.assemble_output(params, await read(dut, reqs), last.n_out)
    with open(os.environ["ROM_TB_OUT"], "w") as f:
        json.dump({"output": [int(v) for v in out], "cycles": cycles}, f)
