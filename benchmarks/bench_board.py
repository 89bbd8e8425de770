"""The accelerator on a board: the board build's figures, and LeNet-300-100 per MNIST image.

1. The board build (`eie board build`, hw/board/build.py): with --build, runs it (Yosys,
   nextpnr-ecp5 on the board's pins, ecppack: minutes to tens of minutes); else reads the
   report.json of a finished build (--out). Prints the resources after place and route, the
   Fmax of the whole top (the PLL's clock domain) and the bitstream's size.
2. LeNet-300-100 (build/lenet300/model.eie, from `make demo`) on the first --images MNIST test
   images: cycles per image from the cycle model (sw/eie/cycles.py with this RTL's latencies,
   hw/timing.py: what the RTL takes, cycle for cycle), and the time per image at the build's
   clock and at its Fmax. LeNet needs 784 activations in the vector memories: a configuration of
   at least 13 PEs of 64 (ecp5_max); --lenet-config picks it (default: the build's config if the
   network fits it, else ecp5_max).
3. The UART link per image: the frames and bytes of inferences of LeNet-300-100 on the first
   --link-images MNIST test images (the model's layers if --model exists, else synthetic
   layers of its shapes, 784-300-100-10: the traffic depends on the shapes and on the input,
   whose rows with one value in every PE go once, to the broadcast PE) as the board's driver code
   (hw.board.driver.Board over Link) sends them, answered by the protocol's reference bridge
   (hw.board.protocol.BridgeModel) over a stand-in for the front end that is always READY
   and DONE; the wire time at --baud, with strided frames (SREAD/SWRITE, protocol 2) and
   without (one block per PE). --link-only: this part alone (no build report).

Run: nice .venv/bin/python benchmarks/bench_board.py [--build] [--board ulx3s]
         [--config ecp5_small] [--clock 125e6] [--out build/board_ulx3s]
         [--model build/lenet300/model.eie] [--images 1000] [--lenet-config PRESET]
         [--baud 3e6] [--link-images 100] [--link-only]
     (MNIST from EIE_MNIST_DIR or --data)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hw.board.build import build, format_board_report  # noqa: E402
from hw.timing import rtl_timing  # noqa: E402
from sw.compression.data import load_split  # noqa: E402
from sw.compression.modelfile import load_model  # noqa: E402
from sw.eie.config import EIEConfig  # noqa: E402
from sw.eie.cycles import simulate_network  # noqa: E402
from sw.eie.fixedpoint import quantize_input  # noqa: E402
from sw.eie.pack import pack_network  # noqa: E402
from sw.errors import EIEError  # noqa: E402


def lenet_cycles(model: Path, config: EIEConfig, n_images: int, data: str | None) -> np.ndarray:
    """Cycles of every layer summed, per image, from the cycle model."""
    layers, _ = load_model(model)
    image = pack_network(layers, config)
    test = load_split("test", data).take(n_images)
    xq = quantize_input(test.inputs().reshape(len(test), -1), config)
    timing = rtl_timing(config)
    return np.array([simulate_network(image, x, timing).cycles for x in xq])


def link_traffic(config: EIEConfig, model: Path, baud: float, n_images: int,
                 data: str | None) -> list[str]:
    """Lines: the link's traffic per inference on ``config``, strided frames and not."""
    from hw.board import protocol as p
    from hw.board.driver import Board, Link
    from hw.soc.regmap import regmap
    from sw.eie.benchlayers import synthetic_fc

    if model.exists():
        layers, _ = load_model(model)
        what = str(model)
    else:
        sizes = [784, 300, 100, 10]
        layers = [synthetic_fc(f"fc{i}", sizes[i], sizes[i + 1], 0.1)
                  for i in range(len(sizes) - 1)]
        for q in layers[:-1]:
            q.relu = True
        what = "synthetic layers 784-300-100-10"
    image = pack_network(layers, config)
    rm = regmap(config)
    status = rm.reg("STATUS")
    ready = sum(status.bit(f) for f in ("READY", "DONE", "LOADED"))

    def target(we: bool, addr: int, data: int):  # a front end that is always ready and done
        return p.ACK, (ready if addr == status.addr and not we else 0)

    class Transport:
        def __init__(self):
            self.model, self.out = p.BridgeModel(target, p.MAX_WORDS, rm.addr_width), bytearray()

        def write(self, data: bytes):
            self.out += self.model.receive(data)

        def read(self, n: int) -> bytes:
            got = bytes(self.out[:n])
            del self.out[:n]
            return got

    test = load_split("test", data).take(n_images)
    xq = quantize_input(test.inputs().reshape(len(test), -1), config)
    lines = [f"\nthe UART link per image ({what} on {config.name}, {config.n_pe} PEs, the "
             f"first {len(xq)} MNIST test images; the driver's frames, wire time at "
             f"{baud / 1e6:g} Mbaud, 8N1, requests and responses one after the other, no USB "
             f"latency):"]
    for strided in (True, False):
        link = Link(Transport(), max_words=p.MAX_WORDS)
        board = Board(link, rm, check=False)
        board.host.max_stride = p.MAX_STRIDE if strided else 0
        board.loaded = image
        for x in xq:
            board.infer(image, x)
        st, k = link.stats, len(xq)
        t = st.wire_seconds(baud) / k
        lines.append(f"  {'strided frames (protocol 2)' if strided else 'one block per PE'}: "
                     f"{st.frames / k:.1f} frames, {st.bytes_out / k:,.1f} bytes out, "
                     f"{st.bytes_in / k:,.1f} bytes in: {t * 1e3:.2f} ms per image "
                     f"({1 / t:,.0f} images/s)")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", action="store_true", help="run the board build (else read --out)")
    ap.add_argument("--board", default="ulx3s")
    ap.add_argument("--config", default="ecp5_small")
    ap.add_argument("--clock", type=float, default=None, help="Hz (default: the board's)")
    ap.add_argument("--router", default="router1")
    ap.add_argument("--out", default=None, help="the build directory (default build/board_<board>)")
    ap.add_argument("--model", default=str(ROOT / "build" / "lenet300" / "model.eie"))
    ap.add_argument("--lenet-config", default=None)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--data", default=None, help="MNIST directory (default: EIE_MNIST_DIR)")
    ap.add_argument("--baud", type=float, default=3e6, help="the line rate of the link figures")
    ap.add_argument("--link-images", type=int, default=100)
    ap.add_argument("--link-only", action="store_true",
                    help="only the link's traffic per image (no build report, no MNIST)")
    args = ap.parse_args()
    if args.link_only:
        config = EIEConfig.load(args.lenet_config or "ecp5_max")
        try:
            print("\n".join(link_traffic(config, Path(args.model), args.baud, args.link_images,
                                          args.data)))
        except EIEError as e:
            print(f"bench_board: error: {e}", file=sys.stderr)
            return 2
        return 0
    out = Path(args.out or ROOT / "build" / f"board_{args.board}")
    try:
        if args.build:
            t = time.monotonic()
            res = build(args.board, EIEConfig.load(args.config), out, clock_hz=args.clock,
                        router=args.router, nice=5, allow_timing_fail=True)
            report = res.report
            print(f"(built in {time.monotonic() - t:.0f} s)")
        else:
            report = json.loads((out / "report.json").read_text())
        print(format_board_report(report))
        clock = report["clock"]["pll"]["f_out_hz"]
        fmax = report["fmax_system_mhz"]

        name = args.lenet_config or report["config"]["name"]
        config = EIEConfig.load(name)
        try:
            cycles = lenet_cycles(Path(args.model), config, args.images, args.data)
        except EIEError as e:
            if args.lenet_config:
                raise
            print(f"\nLeNet-300-100 does not fit {name} ({e}); using ecp5_max")
            config = EIEConfig.load("ecp5_max")
            cycles = lenet_cycles(Path(args.model), config, args.images, args.data)
        mean = float(cycles.mean())
        print(f"\nLeNet-300-100 ({args.model}) on {config.name} ({config.n_pe} PEs), first "
              f"{len(cycles)} MNIST test images, cycle model: {mean:,.1f} cycles per image "
              f"(min {cycles.min():,}, max {cycles.max():,})")
        print(f"  at the build's clock {clock / 1e6:g} MHz: {mean / clock * 1e6:.2f} us per image "
              f"({clock / mean:,.0f} images/s)")
        if fmax:
            print(f"  at the build's Fmax {fmax:.1f} MHz: {mean / (fmax * 1e6) * 1e6:.2f} us per "
                  f"image ({fmax * 1e6 / mean:,.0f} images/s)")
        print("\n".join(link_traffic(config, Path(args.model), args.baud, args.link_images,
                                      args.data)))
    except EIEError as e:
        print(f"bench_board: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
