"""cocotb bench of the whole system behind its UART (:class:`hw.soc.system.System`: UART bridge
-> Wishbone -> the EIE's front end) under Verilator, driven by the *same driver code* as a real
board: :class:`hw.board.driver.Board` over a :class:`hw.board.driver.Link` whose byte
transport is cocotbext-uart's ``UartSource`` (on ``rx``) and ``UartSink`` (on ``tx``).

The driver is blocking code (pyserial style); it runs in a thread started with cocotb's
``bridge``, and the transport's ``write`` / ``read`` hand their work to the simulator with
``resume`` (:class:`CocotbUART`): while the driver waits for a response, the simulation runs.

Tests (environment: ``EIE_BOARD_CASE``, a pickled :class:`sim.job.Case`; the result, JSON, to
``EIE_BOARD_RESULT``):

- ``network``: identify (ID, VERSION, CONFIG_HASH), load the case's image over the UART, then
  every run through :meth:`Board.infer`: the last layer's outputs against the golden model,
  ``cycles`` and ``stall_cycles`` against the cycle model; the link's frames and bytes for the
  load and for each input;
- ``bad_input``: a run started before any image is loaded, a corrupted frame, a wrong CRC, a
  frame cut short, an unknown command, an address outside every window: each a defined error
  response or a one-line driver error, the bus never hung, and the next good frame works.

:func:`board_design` builds the model (the Verilog from :func:`hw.soc.system.generate`, cached
by a hash of the configuration, the UART settings and ``hw/``), :func:`run_board` runs a test.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, RisingEdge
from cocotb.utils import get_sim_time

from hw.board import protocol as p
from hw.board.driver import Board, Link
from hw.soc.bus_host import BusError
from hw.soc.regmap import ErrorCode, RegisterMap, regmap
from sw.eie.config import EIEConfig
from sw.fsutil import atomic_write_text

from .job import Case, load, save
from .runner import BUILD, REPO, Design, build

CLOCK_NS = 10  # 100 MHz
CLK_FREQ = 1e9 / CLOCK_NS
DIVISOR = 8  # clock cycles per bit: 12.5 Mbaud, a whole number of ns per bit for cocotbext-uart
BAUD = CLK_FREQ / DIVISOR
GAP_BYTES = 16  # the bridge's quiet time (the board's default, 2 ms, would be 25,000 bytes here)
TOP = "eie_system"
READ_TIMEOUT_NS = 20_000_000  # a response may take 20 ms of simulated time


class CocotbUART:
    """A byte transport (``write``, ``read`` with a timeout, ``reset_input_buffer``) on a
    UART in the simulator, for blocking code running in a cocotb ``bridge`` thread."""

    def __init__(self, dut, baud: float, timeout_ns: int = READ_TIMEOUT_NS):
        from cocotbext.uart import UartSink, UartSource

        self.source = UartSource(dut.rx, baud=baud, bits=8, stop_bits=1)
        self.sink = UartSink(dut.tx, baud=baud, bits=8, stop_bits=1)
        for end in (self.source, self.sink):  # it logs every byte at INFO
            end.log.setLevel(logging.WARNING)
        self.timeout_ns = timeout_ns

    def write(self, data: bytes) -> None:
        resume(self.source.write)(bytes(data))

    def read(self, n: int) -> bytes:
        return resume(self._read)(n)

    def reset_input_buffer(self) -> None:
        self.sink.clear()

    async def _read(self, n: int) -> bytes:
        out = bytearray()
        deadline = get_sim_time("ns") + self.timeout_ns
        while len(out) < n:
            if not self.sink.empty():
                out += self.sink.read_nowait(min(n - len(out), self.sink.count()))
                continue
            left = deadline - get_sim_time("ns")
            if left <= 0:
                break
            await self.sink.wait(int(left), "ns")
        return bytes(out)


async def _setup(dut) -> tuple[Case, RegisterMap, CocotbUART]:
    case: Case = load(Path(os.environ["EIE_BOARD_CASE"]))
    rm = regmap(case.image.config)
    Clock(dut.clk, CLOCK_NS, unit="ns", impl="gpi").start(start_high=False)
    dut.rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    return case, rm, CocotbUART(dut, BAUD)


def _save_result(result: dict) -> None:
    path = os.environ.get("EIE_BOARD_RESULT")
    if path:
        atomic_write_text(Path(path), json.dumps(result, indent=1) + "\n")


@cocotb.test()
async def network(dut) -> None:
    case, rm, uart = await _setup(dut)
    image = case.image
    last = len(image.layers) - 1
    result: dict = {"config": image.config.name, "n_pe": image.config.n_pe, "baud": BAUD,
                    "clock_hz": CLK_FREQ, "runs": len(case.runs)}

    log = dut._log

    def drive() -> None:  # the board's driver code, as `eie board run` runs it
        link = Link(uart)
        board = Board(link, rm)
        t = time.perf_counter()
        s0 = get_sim_time("ns")
        board.load(image)
        result["load"] = {"frames": link.stats.frames, "bytes_out": link.stats.bytes_out,
                          "bytes_in": link.stats.bytes_in, "wall_s": time.perf_counter() - t,
                          "sim_ns": get_sim_time("ns") - s0}
        log.info(f"image loaded: {link.stats.frames} frames, {link.stats.bytes_out:,} bytes "
                 f"out, {result['load']['sim_ns'] / 1e6:.1f} ms simulated in "
                 f"{result['load']['wall_s']:.0f} s")
        per_run = []
        preds = []
        for i, run in enumerate(case.runs):
            f0, o0, i0 = link.stats.frames, link.stats.bytes_out, link.stats.bytes_in
            y, c = board.infer(image, run.x)
            want = image.to_logical(last, run.expect[-1])
            if not np.array_equal(y, want):
                raise AssertionError(f"run {i} ({run.label}): outputs {y.tolist()} != golden "
                                     f"{want.tolist()}")
            model = (sum(run.model_cycles), sum(run.model_stalls))
            if (c.cycles, c.stall_cycles) != model:
                raise AssertionError(f"run {i}: cycles/stalls {(c.cycles, c.stall_cycles)} != "
                                     f"cycle model {model}")
            per_run.append((link.stats.frames - f0, link.stats.bytes_out - o0,
                            link.stats.bytes_in - i0, c.cycles))
            preds.append(int(np.argmax(y)))
            if (i + 1) % 10 == 0:
                log.info(f"{i + 1} of {len(case.runs)} runs bit-exact and cycle-exact "
                         f"({time.perf_counter() - t:.0f} s)")
        result["per_run"] = per_run
        result["pred"] = preds
        result["wall_s"] = time.perf_counter() - t
        result["sim_ns"] = get_sim_time("ns") - s0

    await bridge(drive)()
    _save_result(result)
    n = len(case.runs)
    load_ = result["load"]
    dut._log.info(f"loaded in {load_['frames']} frames ({load_['bytes_out']:,} bytes out), "
                  f"{n} runs bit-exact with golden and cycle-exact with the cycle model in "
                  f"{result['wall_s']:.0f} s")


@cocotb.test()
async def bad_input(dut) -> None:
    case, rm, uart = await _setup(dut)
    seen: list[str] = []

    def expect_error(kind, f, match: str) -> None:
        try:
            f()
        except kind as e:
            text = str(e)
            if match not in text or "\n" in text:
                raise AssertionError(f"expected a one-line error with {match!r}, got "
                                     f"{text!r}") from None
            seen.append(text)
            return
        raise AssertionError(f"no {kind.__name__} ({match})")

    def drive() -> None:
        link = Link(uart)
        board = Board(link, rm)
        ctrl = rm.reg("CTRL")
        good = p.read_request(rm.reg("ID").addr, 1)

        def next_frame_works() -> None:
            if board.read(rm.reg("ID").addr) != [rm.id_magic]:
                raise AssertionError("the ID register does not read back after an error")

        # a run started before any image is loaded
        board.write(rm.reg("N_LAYERS").addr, [1])
        expect_error(BusError, lambda: board.write(ctrl.addr, [ctrl.bit("START")]),
                     ErrorCode.NOT_LOADED.name)
        next_frame_works()
        # malformed frames: each answered with its status
        cases = {
            "corrupted": (good[:4] + bytes([good[4] ^ 0x08]) + good[5:], p.Status.BAD_CRC),
            "wrong CRC": (good[:-1] + bytes([good[-1] ^ 0xFF]), p.Status.BAD_CRC),
            "cut short": (good[:5], p.Status.CUT_SHORT),
            "unknown command": (bytes([p.REQ_SYNC, 0x21]) + good[2:], p.Status.BAD_FRAME),
            "no sync byte": (b"\x00" + good[1:], p.Status.BAD_FRAME),
        }
        for name, (frame, status) in cases.items():
            rsp = link.exchange(frame, name)
            if rsp.status != status:
                raise AssertionError(f"{name}: answered {rsp.status.name}, not {status.name}")
            expect_error(p.LinkError, lambda rsp=rsp, name=name: rsp.check(name),
                         p.STATUS_TEXT[status][:30])
            next_frame_works()
        # an address outside every window: the front end's err, explained
        expect_error(BusError, lambda: board.read(rm.reg_block - 1), ErrorCode.UNMAPPED.name)
        next_frame_works()
        # an address beyond the bus: the bridge's own answer
        expect_error(p.LinkError, lambda: board.read(1 << rm.addr_width), "bus error")
        next_frame_works()

    await bridge(drive)()
    _save_result({"errors": seen})
    for line in seen:
        dut._log.info(f"error as the driver reports it: {line}")


# -- building and running --------------------------------------------------------------------------
def _generator_hash(config: EIEConfig) -> str:
    h = hashlib.sha256(json.dumps([config.to_dict(), CLK_FREQ, BAUD, GAP_BYTES],
                                  sort_keys=True).encode())
    for src in sorted((REPO / "hw").rglob("*.py")) + [REPO / "sw" / "eie" / "config.py"]:
        h.update(str(src.relative_to(REPO)).encode())
        h.update(src.read_bytes())
    return h.hexdigest()[:16]


def board_verilog(config: EIEConfig) -> Path:
    """The Verilog of :class:`hw.soc.system.System` for ``config`` at this bench's clock and
    baud rate (generated once)."""
    path = BUILD / "rtl" / f"{TOP}-{config.name}-{_generator_hash(config)}.v"
    if not path.exists():
        from hw.soc.system import generate

        atomic_write_text(path, generate(config, CLK_FREQ, BAUD, TOP, gap_bytes=GAP_BYTES).text)
    return path


def board_design(config: EIEConfig, sim: str | None = None) -> Design:
    """A built simulation model of the system for ``config``."""
    return build([board_verilog(config)], TOP, sim=sim)


def run_board(design: Design, case: Case, testcase: str | None = None) -> dict:
    """Run the bench's test ``testcase`` (or both) on ``design`` with ``case``; raises on a
    failure; returns the result the test wrote."""
    run_dir = design.build_dir / "runs" / f"board-{os.getpid()}-{time.time_ns() % 10**9}"
    run_dir.mkdir(parents=True)
    case_file = run_dir / "case.pkl"
    result_file = run_dir / "result.json"
    save(case, case_file)
    env = {"EIE_BOARD_CASE": str(case_file), "EIE_BOARD_RESULT": str(result_file),
           "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "INFO")}
    design.run("sim.tb_board", testcase=testcase, env=env, test_dir=run_dir / "sim", quiet=True)
    return json.loads(result_file.read_text()) if result_file.exists() else {}

