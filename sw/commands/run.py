"""Run a network on a batch with the golden model: a fast, bit-exact prediction of the hardware.

The model is any file `eie` reads (ONNX, torch.export .pt2, TorchScript, a state_dict of Linear
layers, a model.eie); its FC chains run through EIE's golden model (exactly what the RTL
computes), everything else on the host in PyTorch. The outputs are saved as .npy; with targets
in the inputs file, accuracy (class labels) or RMSE and max error (real-valued targets) are
printed for float and golden.
"""

from __future__ import annotations

import argparse
import time

from sw.commands.options import add_act, add_config, add_formats, describe


def add_common(p: argparse.ArgumentParser) -> None:
    """Options every command that runs a user's network takes (also `eie sim --model`)."""
    add_config(p)
    add_act(p)
    add_formats(p)
    p.add_argument("--balance", action="store_true", help="load-balanced row assignment")
    p.add_argument("--limit", type=int, metavar="N", help="the first N inputs only")


def add_arguments(p: argparse.ArgumentParser) -> None:
    describe(p, __doc__,
             "eie run --model my_model.onnx --inputs data.npz --out build/pred.npy",
             "eie run --model build/lenet300/model.eie --inputs x.npy --out y.npy")
    p.add_argument("--model", required=True, metavar="FILE", help="the network")
    p.add_argument("--inputs", required=True, metavar="FILE",
                   help=".npz (x_test[, y_test, x_train, y_train]), .npy or IDX inputs, or an "
                        "MNIST directory")
    p.add_argument("--out", required=True, metavar="FILE.npy", help="the golden model's outputs")
    add_common(p)


def prepare(args: argparse.Namespace, log=print):
    """The network compiled for the configuration, and its inputs (shared with `eie sim`)."""
    from sw.eie.config import EIEConfig
    from sw.frontends import load_network
    from sw.frontends.hybrid import compile_network, load_inputs_for

    config = EIEConfig.load(args.config)
    t = time.perf_counter()
    network = load_network(args.model, act=args.act)
    inputs = load_inputs_for(network, args.inputs, args.limit)
    model = compile_network(network, config, inputs.calib, args.formats, args.balance)
    log(f"{args.model}: {network.format} network, {len(network.nodes)} nodes, "
        f"{len(model.segments)} EIE segment(s) on {config.name} (N={config.n_pe}); activation "
        f"formats {args.formats}" + (f" from {inputs.calib_source}" if args.formats == "auto" else "")
        + f" ({time.perf_counter() - t:.1f} s)")
    for line in model.describe():
        log(line)
    return model, inputs


def run(args: argparse.Namespace) -> int:
    import io

    import numpy as np

    from sw.compression.data import evaluate
    from sw.errors import DataError
    from sw.fsutil import atomic_write_bytes

    if not str(args.out).endswith(".npy"):
        raise DataError(f"--out {args.out}: give a .npy file name")
    model, inputs = prepare(args)
    t = time.perf_counter()
    golden = model.run_golden(inputs.x)
    t_golden = time.perf_counter() - t
    buf = io.BytesIO()
    np.save(buf, golden)
    atomic_write_bytes(args.out, buf.getvalue())
    print(f"golden model: {len(inputs.x)} input(s) in {t_golden:.2f} s -> {args.out} "
          f"{golden.shape} float32")
    sat = ", ".join(f"{k} {v}" for k, v in model.saturation.items())
    print(f"saturated outputs per layer: {sat}")
    if inputs.data is not None:
        y = inputs.data.y_test[: len(inputs.x)]
        for what, out in {**model.float_outputs(inputs.x), "golden": golden}.items():
            m = evaluate(inputs.data.task, out, y)
            print(f"{what:7} " + ", ".join(f"{k} {v:.2%}" if k == "accuracy" else f"{k} {v:.6g}"
                                          for k, v in m.items()))
    return 0
