"""Deep Compression of LeNet-5 (Caffe variant, 431K parameters) on real MNIST.

Runs the same pipeline as ``eie compress --model lenet5`` with its defaults and prints the
compression ratio, the dense / compressed test errors and the wall time. The paper
(Deep Compression Table 3): 0.80% -> 0.74% error, 1720 KB -> 44 KB, 39x.
The defaults (issue 14), from the dense phase's checkpoint, seed 0: 0.60% -> 0.62% error,
1,724,320 -> 17,110 bytes, 100.8x.

    EIE_MNIST_DIR=<mnist dir> .venv/bin/python benchmarks/bench_lenet5.py [--out build/lenet5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from sw.compression.compress import compress_builtin, default_settings  # noqa: E402
from sw.compression.modelfile import format_table  # noqa: E402
from sw.errors import EIEError  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="MNIST directory (default: $EIE_MNIST_DIR)")
    ap.add_argument("--out", default="build/lenet5", help="output directory (default build/lenet5)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--progress", action="store_true", help="show progress bars")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    settings = default_settings("lenet5", seed=args.seed, progress=args.progress)
    t = time.perf_counter()
    try:
        report = compress_builtin("lenet5", args.out, settings, data=args.data,
                                  log=lambda m: print(m, file=sys.stderr, flush=True))
    except EIEError as e:
        print(f"bench_lenet5: {e}", file=sys.stderr)
        return 2
    wall = time.perf_counter() - t
    print(format_table(report["layers"]))
    print(f"lenet5: error dense {100 * report['error_dense']:.2f}% -> compressed "
          f"{100 * report['error_compressed']:.2f}% (paper 0.80% -> 0.74%)")
    print(f"lenet5: {report['original_bytes']:,} -> {report['compressed_bytes']:,} bytes, "
          f"{report['ratio']:.1f}x (paper 39x), wall {wall:.0f} s on {args.threads} threads")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
