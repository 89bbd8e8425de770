"""The accelerator on an FPGA board: build a bitstream, write the board's constraints, load and
run models over the UART.

  build        the board top (oscillator -> PLL -> UART bridge + the EIE's Wishbone front end,
               reset button, LEDs) for an amaranth-boards board: Yosys, nextpnr-ecp5 on the
               board's pins, ecppack; the report gives resources, the Fmax of the whole top
               and the bitstream's size. With --model the model's images are in ROM (the
               memories' initial contents); without, they are loaded over the UART at run time.
  constraints  write constraints/<board>.lpf (pins and clocks) from the amaranth-boards platform
  load         reset the accelerator and load a model's images over the UART
  run          run a batch of inputs through a model on the board (host segments in PyTorch, each
               EIE segment's images loaded in its turn); outputs, accuracy, board == golden,
               counters, and the link's traffic per input
  read         read registers (all of them, decoded, by default) or words at an address

load, run and read talk to the bitstream's UART bridge (docs/soc.md, "UART bridge and
protocol") through a serial port (or a pyserial URL) and check first that it reaches an EIE of
the configuration given (--config, or --regmap: the regmap.json of `eie regmap`): ID, VERSION
and CONFIG_HASH. A model is compiled as `eie run` compiles it (activation formats from the
calibration inputs); `run --no-load` uses the images `load` loaded, so give `load --calib` the
file `run --inputs` gets.

Supported boards: ulx3s (Radiona ULX3S, LFE5U-85F), ecpix5 (LambdaConcept ECPIX-5, LFE5UM5G-85F).
docs/fpga.md, "Board builds", describes the outputs. Place and route of an EIE takes minutes
(the YoWASP nextpnr is single-threaded).
"""

from __future__ import annotations

import argparse

from sw.commands.options import add_act, add_calib, add_config, describe


def _add_build(p: argparse.ArgumentParser) -> None:
    from hw.board.build import DEFAULT_BAUD
    from hw.board.top import BOARDS

    p.add_argument("--board", required=True, metavar="BOARD",
                   help=f"the board ({', '.join(BOARDS)})")
    add_config(p, "ecp5_small")
    p.add_argument("--model", metavar="FILE",
                   help="a model (as `eie rom` takes it) whose images the memories hold from "
                        "power-up (default: none, images loaded over the UART)")
    add_calib(p)
    add_act(p)
    p.add_argument("--balance", action="store_true", help="load-balance-aware row assignment")
    p.add_argument("--clock", type=float, metavar="HZ",
                   help="system clock in Hz, made by the PLL from the board's oscillator "
                        "(default: the board's, 125e6)")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                   help=f"UART baud rate (default: {DEFAULT_BAUD})")
    p.add_argument("--router", default="router1", choices=["router1", "router2"],
                   help="nextpnr router (default: router1)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default: 1)")
    p.add_argument("--nice", type=int, default=0, metavar="N",
                   help="run the tools at a lower priority (default: 0)")
    p.add_argument("--allow-timing-fail", action="store_true",
                   help="write the bitstream even when the Fmax is below --clock")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output directory, written atomically")


def _run_build(args: argparse.Namespace) -> int:
    from hw.board.build import build, format_board_report
    from sw.eie.config import EIEConfig

    config = EIEConfig.load(args.config)
    result = build(args.board, config, args.out, clock_hz=args.clock, model=args.model,
                   act=args.act, calib=args.calib, balance=args.balance, baud=args.baud,
                   seed=args.seed, router=args.router, nice=args.nice,
                   allow_timing_fail=args.allow_timing_fail)
    print(format_board_report(result.report))
    print(f"report: {result.out / 'report.json'}")
    if result.bitstream:
        print(f"bitstream: {result.bitstream}")
    return 0


def _add_constraints(p: argparse.ArgumentParser) -> None:
    from hw.board.top import BOARDS

    p.add_argument("--board", choices=sorted(BOARDS), action="append",
                   help="the board (repeatable; default: every supported board)")


def _run_constraints(args: argparse.Namespace) -> int:
    from hw.board.build import write_constraints
    from hw.board.top import BOARDS

    for name in args.board or BOARDS:
        print(f"wrote {write_constraints(name)}")
    return 0


def _add_link(p: argparse.ArgumentParser) -> None:
    """The options of every verb that talks to a board."""
    from hw.board.build import DEFAULT_BAUD
    from hw.board.driver import DEFAULT_TIMEOUT

    p.add_argument("--port", required=True, metavar="PORT",
                   help="serial port (/dev/ttyUSB0, COM3) or a pyserial URL (socket://host:port)")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                   help=f"baud rate, as the bitstream was built (default: {DEFAULT_BAUD})")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                   help=f"seconds to wait for a response (default: {DEFAULT_TIMEOUT})")
    p.add_argument(
        "--config", metavar="PRESET|FILE",
        help="the configuration the bitstream was built for (a preset or a JSON file)")
    p.add_argument("--regmap", metavar="FILE",
                   help="instead of --config: the register map (regmap.json of `eie regmap`)")


def _add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="FILE",
                   help="the network (ONNX, .pt2, TorchScript, state_dict, model.eie)")
    add_act(p)
    p.add_argument("--balance", action="store_true", help="load-balance-aware row assignment")


def _board(args: argparse.Namespace):
    """The :class:`hw.board.driver.Board` the options name (identified)."""
    from hw.board.driver import Board, Link, open_serial
    from hw.soc.regmap import RegisterMap, regmap
    from sw.eie.config import EIEConfig
    from sw.errors import ConfigError

    if (args.config is None) == (args.regmap is None):
        raise ConfigError("give the board's configuration: --config PRESET|FILE or --regmap FILE")
    rm = RegisterMap.from_json(args.regmap) if args.regmap else regmap(EIEConfig.load(args.config))
    return Board(Link(open_serial(args.port, args.baud, args.timeout)), rm)


def _one_segment(model, what: str):
    from sw.errors import FitError

    if len(model.segments) != 1:
        raise FitError(f"the network has {len(model.segments)} EIE segments; {what} holds one "
                       f"at a time: `eie board run` loads each in its turn")
    return model.segments[0]


def _add_load(p: argparse.ArgumentParser) -> None:
    _add_link(p)
    _add_model(p)
    add_calib(p)


def _run_load(args: argparse.Namespace) -> int:
    import time

    from sw.commands.sources import compile_for_hardware

    board = _board(args)
    model, _ = compile_for_hardware(board.regmap.config, args.model, None, 0, args.act,
                                    args.calib, args.balance)
    seg = _one_segment(model, "the board")
    t = time.perf_counter()
    board.load(seg.image)
    s = board.link.stats
    print(f"loaded {len(seg.layers)} layer(s) ({' -> '.join(q.name for q in seg.layers)}) into "
          f"{board.regmap.config.name} over {args.port}: {s.frames} frames, {s.bytes_out:,} "
          f"bytes out in {time.perf_counter() - t:.1f} s")
    return 0


def _add_run(p: argparse.ArgumentParser) -> None:
    from sw.frontends.hybrid import FORMATS

    _add_link(p)
    _add_model(p)
    p.add_argument("--inputs", required=True, metavar="FILE",
                   help=".npz (x_test[, y_test, x_train, y_train]), .npy or IDX inputs, or an "
                        "MNIST directory")
    p.add_argument("--formats", default="auto", choices=FORMATS,
                   help="activation formats: from calibration data (auto) or act_frac (fixed)")
    p.add_argument("--limit", type=int, metavar="N", help="the first N inputs only")
    p.add_argument("--no-load", action="store_true",
                   help="use the images `eie board load` loaded (one EIE segment)")
    p.add_argument("--busy", action="store_true", help="also read the per-PE busy counters")
    p.add_argument("--out", metavar="FILE.npy", help="save the board's outputs")


def _run_run(args: argparse.Namespace) -> int:
    import io
    import sys
    import time

    import numpy as np

    from sw.compression.data import evaluate
    from sw.errors import DataError
    from sw.frontends import load_network
    from sw.frontends.hybrid import compile_network, load_inputs_for
    from sw.fsutil import atomic_write_bytes

    if args.out and not str(args.out).endswith(".npy"):
        raise DataError(f"--out {args.out}: give a .npy file name")
    board = _board(args)
    network = load_network(args.model, act=args.act)  # as `eie run` compiles it
    inputs = load_inputs_for(network, args.inputs, args.limit)
    model = compile_network(network, board.regmap.config, inputs.calib, args.formats,
                            args.balance)
    for line in model.describe():
        print(line)
    if args.no_load:
        seg = _one_segment(model, "--no-load")
        status = board.registers()["STATUS"]
        if not status & board.regmap.reg("STATUS").bit("LOADED"):
            raise DataError("--no-load: the board holds no layer table (run `eie board load`)")
        board.loaded = seg.image
    golden = model.run_golden(inputs.x)
    t = time.perf_counter()

    def progress(index: int, done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            print(f"  EIE segment {index}: {done}/{total}", file=sys.stderr, flush=True)

    result = board.run(model, inputs.x, busy=args.busy, progress=progress)
    wall = time.perf_counter() - t
    out = result.outputs
    n = len(inputs.x)
    s = board.link.stats
    print(f"board: {n} input(s) in {wall:.1f} s ({wall / n * 1e3:.1f} ms per input); link "
          f"{s.frames} frames, {s.bytes_out:,} bytes out, {s.bytes_in:,} in "
          f"({s.wire_seconds(args.baud) / n * 1e3:.2f} ms per input on the wire at "
          f"{args.baud:,} baud)")
    for index, cs in result.counters.items():
        cyc = np.array([c.cycles for c in cs])
        st = np.array([c.stall_cycles for c in cs])
        line = (f"EIE segment {index}: cycles per run mean {cyc.mean():,.1f} (min {cyc.min():,}, "
                f"max {cyc.max():,}), stall cycles mean {st.mean():,.1f}")
        if args.busy:
            busy = np.stack([c.busy for c in cs]).mean(axis=0)
            line += f", busy per PE mean {busy.mean():,.1f} (max {busy.max():,.1f})"
        print(line)
    exact = np.array_equal(out, golden)
    print(f"board outputs == golden model: {'yes' if exact else 'NO'}"
          + ("" if exact else f" ({int(np.any(out != golden, axis=-1).sum())} of {n} inputs "
                              f"differ)"))
    if inputs.data is not None:
        y = inputs.data.y_test[:n]
        for what, o in {**model.float_outputs(inputs.x), "golden": golden, "board": out}.items():
            m = evaluate(inputs.data.task, o, y)
            print(f"{what:7} " + ", ".join(f"{k} {v:.2%}" if k == "accuracy" else f"{k} {v:.6g}"
                                          for k, v in m.items()))
    if args.out:
        buf = io.BytesIO()
        np.save(buf, out)
        atomic_write_bytes(args.out, buf.getvalue())
        print(f"outputs -> {args.out} {out.shape} float32")
    return 0 if exact else 1


def _add_read(p: argparse.ArgumentParser) -> None:
    _add_link(p)
    p.add_argument("--reg", action="append", metavar="NAME",
                   help="a register by name (repeatable; default: every register)")
    p.add_argument("--addr", type=lambda v: int(v, 0), metavar="WORD_ADDR",
                   help="instead: words from this word address (0x... for hex)")
    p.add_argument("--count", type=int, default=1, help="words to read at --addr (default: 1)")


def _run_read(args: argparse.Namespace) -> int:
    from sw.errors import DataError

    board = _board(args)
    rm = board.regmap
    if args.addr is not None:
        if args.count < 1:
            raise DataError(f"--count must be >= 1, got {args.count}")
        for i, w in enumerate(board.read(args.addr, args.count)):
            print(f"0x{args.addr + i:08x}  0x{w:08x}  {w:>10}  {rm.locate(args.addr + i)}")
        return 0
    values = board.registers()
    regs = {r.name: r for r in rm.registers}
    for name in args.reg or list(values):
        if name not in values:
            raise DataError(f"no register {name!r} (registers: {', '.join(values)})")
        r = regs[name]
        v = values[name]
        fields = ", ".join(f"{f.name}={(v & f.mask) >> f.offset}" for f in r.fields)
        print(f"0x{r.addr:04x}  {name:<16} 0x{v:08x}  {v:>10}" + (f"  {fields}" if fields else ""))
    return 0


# sub-verb -> (add_arguments, run, one-line help)
SUBVERBS = {
    "build": (_add_build, _run_build,
              "synthesis, place and route and bitstream of the board top"),
    "constraints": (_add_constraints, _run_constraints,
                    "write constraints/<board>.lpf from the amaranth-boards platform"),
    "load": (_add_load, _run_load, "load a model's images over the UART"),
    "run": (_add_run, _run_run, "run a batch of inputs on the board: outputs, accuracy, counters"),
    "read": (_add_read, _run_read, "read registers or words over the UART"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    describe(p, __doc__,
             "eie board build --board ulx3s --config ecp5_small --out build/board_ulx3s",
             "eie board build --board ulx3s --config ecp5_max --model build/lenet300/model.eie "
             "--clock 100e6 --out build/board_lenet",
             "eie board constraints --board ulx3s",
             "eie board load --port /dev/ttyUSB0 --config ecp5_max "
             "--model build/lenet300/model.eie --calib $EIE_MNIST_DIR",
             "eie board run --port /dev/ttyUSB0 --config ecp5_max "
             "--model build/lenet300/model.eie --inputs $EIE_MNIST_DIR --limit 100",
             "eie board read --port /dev/ttyUSB0 --config ecp5_max")
    sub = p.add_subparsers(dest="board_verb", metavar="VERB", required=True)
    for name, (add, _, help_) in SUBVERBS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        add(sp)


def run(args: argparse.Namespace) -> int:
    return SUBVERBS[args.board_verb][1](args)
