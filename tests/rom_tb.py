"""cocotb testbench for tests/test_rom.py: runs one input through an EIE Verilog build.

Environment: ``ROM_TB_IMAGES`` (image directory), ``ROM_TB_INPUT`` (JSON list: the physical
integer input vector), ``ROM_TB_LOAD`` ("1": load the images through the host port first, the
run-time-loaded build; "0": the memories already hold them, the ROM build), ``ROM_TB_OUT``
(JSON file the outputs and cycle count are written to). The programs are
:func:`hw.host.load_program` + :func:`hw.host.inference_program` and :func:`hw.host.rom_program`,
played by the cocotb backend (:class:`sim.driver.EIEDriver`).
"""

import json
import os

import cocotb
import numpy as np

from hw import host
from hw.params import HWParams
from sim.driver import EIEDriver
from sw.eie.images import read_images


@cocotb.test()
async def run_network(dut):
    image = read_images(os.environ["ROM_TB_IMAGES"])
    params = HWParams(image.config)
    a_phys = np.asarray(json.loads(os.environ["ROM_TB_INPUT"]), dtype=np.int64)
    if os.environ["ROM_TB_LOAD"] == "1":
        program = host.load_program(params, image) + host.inference_program(params, image, a_phys)
    else:
        program = host.rom_program(params, image, a_phys)
    out = await EIEDriver(dut, params).run(program)
    ((_, y),), (c,) = out.outputs, out.counters
    with open(os.environ["ROM_TB_OUT"], "w") as f:
        json.dump({"output": [int(v) for v in y], "cycles": c.cycles}, f)
