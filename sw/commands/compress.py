"""Deep Compression: prune, quantize, Huffman-code a network.

--model is a built-in network (lenet300, lenet5, alexnet-fc) or a model file of your own
(ONNX, torch.export .pt2, TorchScript, a state_dict of Linear layers, or a model.eie).

Built-in: trains the network on MNIST (or loads --weights), prunes it iteratively with
retraining (threshold = quality x std of each layer's weights), clusters each layer's surviving
weights into 2**bits - 1 shared values plus zero and fine-tunes them.

Your own network: the FC layers that run on EIE are compressed the same way; every other node
(convolutions, Tanh, softmax, ...) stays on the host in float32, frozen. --data FILE (.npz
with x_test, y_test and optionally x_train, y_train; an inputs file plus --targets FILE;
or an MNIST IDX directory): with training examples the pruned and quantized layers are
retrained (cross-entropy for integer labels, mean squared error for real targets); without,
compression is one-shot (pruned to the target densities, k-means, no retraining).

Writes to --out: model.eie (the Huffman-coded model file; for your own network it holds the
whole network, host part included, and `load_network` reads it back), report.json,
table.txt (the paper's layer-wise table) and weights_{dense,pruned,quantized}.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

from sw.commands.options import add_act, add_config
from sw.errors import DataError

MODELS = ("lenet300", "lenet5", "alexnet-fc")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from sw.compression.quantize import ECSQ_LAMBDA

    p.description = __doc__
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = _epilog()
    g = p.add_argument_group("input and output")
    g.add_argument("--model", default="lenet300", metavar="NAME|FILE",
                   help=f"network to compress: built in ({', '.join(MODELS)}) or a model file "
                        "(ONNX, .pt2, TorchScript, state_dict, model.eie) (default: lenet300)")
    g.add_argument("--data", metavar="PATH",
                   help="built-in models: directory with the four MNIST IDX files (.gz or raw), "
                        "default $EIE_MNIST_DIR; a model file: .npz (x_test, y_test, optionally "
                        "x_train, y_train, x_val, y_val), an inputs file (.npy or IDX) with "
                        "--targets, or an "
                        "MNIST directory (none: one-shot, no accuracy)")
    g.add_argument("--targets", metavar="FILE",
                   help="with a model file: the targets (.npy or IDX) of the inputs in --data "
                        "(a test set only: one-shot)")
    g.add_argument("--task", choices=("classification", "regression"),
                   help="with a model file: what the targets are (default: classification for "
                        "integer targets, regression for real ones); sets the loss and metrics")
    add_act(g, None)
    g.add_argument("--weights", metavar="FILE",
                   help="torch.save'd state_dict to start from: required for alexnet-fc "
                        "(torchvision keys classifier.1/4/6.weight|bias); for the LeNets a "
                        "trained checkpoint of the built-in model (keys ip1.weight, ...), which "
                        "skips dense training unless --epochs is given")
    g.add_argument("--out", metavar="DIR", required=True,
                   help="output directory, written atomically (replaced only when complete)")
    g.add_argument("--limit-train", type=int, metavar="N",
                   help="use only the first N training images (quick runs)")
    g.add_argument("--limit-test", type=int, metavar="N",
                   help="evaluate on only the first N test images")

    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, metavar="N",
                   help="dense training epochs from scratch (0 = use --weights as they are)")
    g.add_argument("--lr", type=float, help="dense learning rate, cosine-decayed over each phase")
    g.add_argument("--batch-size", type=int, metavar="N", help="minibatch size")
    g.add_argument("--optimizer", choices=("adam", "sgd"), help="optimizer for every phase "
                   "(default adam; sgd uses momentum 0.9)")
    g.add_argument("--weight-decay", type=float, metavar="L2", help="L2 regularisation")
    g.add_argument("--distill", type=float, metavar="A",
                   help="knowledge distillation while retraining and fine-tuning: loss = "
                        "(1-A) cross-entropy + A T^2 KL(dense teacher || student); 0 = off")
    g.add_argument("--temperature", type=float, metavar="T", help="distillation temperature")
    g.add_argument("--shift", type=int, metavar="PX",
                   help="augmentation in every training phase: each epoch, every image is "
                        "translated by a random offset of up to PX pixels (0 = off)")

    g = p.add_argument_group("pruning (Han et al., NIPS 2015)")
    g.add_argument("--prune-iters", type=int, metavar="N",
                   help="prune -> retrain iterations; the quality parameter ramps up linearly "
                        "to its final value over them")
    g.add_argument("--retrain-epochs", type=int, metavar="N",
                   help="retraining epochs after each pruning step (0 = prune once, no retraining)")
    g.add_argument("--retrain-lr", type=float, metavar="LR", help="retraining learning rate")
    g.add_argument("--quality", type=float, metavar="Q",
                   help="quality parameter of every layer without its own --sensitivity "
                        "(given alone, it replaces the model's per-layer defaults): weights "
                        "with |w| < Q x std(layer's dense weights) are pruned")
    g.add_argument("--sensitivity", metavar="SPEC",
                   help="per-layer quality parameters, 'ip1=2.2,ip2=1.6' or a JSON file "
                        "{\"ip1\": 2.2, ...}")
    g.add_argument("--density", metavar="SPEC",
                   help="per-layer target kept fractions instead of quality parameters, "
                        "'fc6=0.09,fc8=0.25' or a JSON file")

    g = p.add_argument_group("trained quantization (Deep Compression Sec. 3; Choi et al. 2017)")
    g.add_argument("--bits", metavar="SPEC",
                   help="weight bits: '4' for every layer, 'ip3=5' for one, or '5,ip3=6'; "
                        "2**bits - 1 centroids plus code 0 = zero (default 4, EIE's width)")
    g.add_argument("--quantizer", metavar="SPEC",
                   help="weight quantizer: 'ecsq' for every layer, 'ip1=ternary' for one, or "
                        "'kmeans,ip3=uniform': kmeans (the paper's), hessian (Hessian-weighted "
                        "k-means), uniform (evenly spaced levels), ecsq (entropy-constrained), "
                        "ternary (0, +-alpha) or binary (pruned, sign x alpha); ternary and "
                        "binary use 2 bits (default kmeans)")
    g.add_argument("--ecsq-lambda", type=float, metavar="L",
                   help="ECSQ's Lagrange multiplier: assignment cost (w - c)^2 / var(w) + "
                        f"L x code length in bits (default {ECSQ_LAMBDA}); larger: fewer bits, "
                        "more error")
    g.add_argument("--hessian-batches", type=int, metavar="N",
                   help="minibatches of squared gradients averaged into the hessian quantizer's "
                        "diagonal Hessian estimate (default 100)")
    g.add_argument("--init", choices=("linear", "density", "random"),
                   help="k-means initialization (default linear, the paper's best)")
    g.add_argument("--finetune-epochs", type=int, metavar="N",
                   help="centroid fine-tuning epochs (dL/dC_k = sum of the cluster's gradients)")
    g.add_argument("--finetune-lr", type=float, metavar="LR",
                   help="centroid fine-tuning learning rate")
    g.add_argument("--index-bits", type=int, metavar="B",
                   help="relative-index bits in the model file (default: the smallest file "
                        "per layer)")

    g = p.add_argument_group("low-bit activations (DoReFa-style quantization-aware training)")
    g.add_argument("--act-bits", type=int, metavar="B",
                   help="retrain and fine-tune for B-bit activations (4..16; run the result "
                        "with a config of act_bits B): each EIE layer's inputs, outputs, "
                        "codebook and bias are fake-quantized to the fixed-point formats the "
                        "packer chooses from the first 1,000 training inputs, straight-through "
                        "gradients; the report gives the on-chip bytes saved against 16 bits")
    g.add_argument("--act-phases", choices=("all", "finetune"),
                   help="with --act-bits: fake-quantize while retraining after each pruning "
                        "step and while fine-tuning centroids (all, the default), or while "
                        "fine-tuning only (the pruned network as without --act-bits)")

    g = p.add_argument_group("accuracy budget (per-layer sensitivity analysis)")
    g.add_argument("--max-loss", type=float, metavar="POINTS",
                   help="choose each layer's density and bit width (instead of the quality "
                        "parameters) to maximise the ratio while losing at most POINTS points "
                        "of error (regression: RMSE) on a validation split: sensitivity "
                        "analysis per layer, plan, compress, verify, back off")
    g.add_argument("--val-fraction", type=float, metavar="F",
                   help="with --max-loss: fraction of the training examples held out for "
                        "validation, unless the .npz has x_val, y_val (default 0.1)")
    g.add_argument("--budget-tries", type=int, metavar="N",
                   help="with --max-loss: compress-and-verify attempts (default 4)")
    g.add_argument("--budget-steps", type=int, metavar="N",
                   help="with --max-loss: retraining steps after each pruning of the "
                        "sensitivity analysis (default 100; 0 = one-shot, as the paper)")

    g = p.add_argument_group("on-chip footprint")
    add_config(g)

    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int, default=0, metavar="N",
                   help="random seed for everything (default 0)")
    g.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch threads (default 1: LeNet-sized matrices gain nothing from more, "
                        "and on a busy machine extra threads spin and run ~10x slower)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--no-plots", action="store_true",
                   help="skip the weight-distribution plots (quick runs)")
    g.add_argument("--quiet", action="store_true",
                   help="print only the final table and summary (implies --no-progress)")


# CompressSettings field -> the option that sets it
_OPTION = {"dense_epochs": "--epochs", "layer_bits": "--bits", "layer_quantizer": "--quantizer",
           "eie_config": "--config"}


def _opt(field: str) -> str:
    return _OPTION.get(field, "--" + field.replace("_", "-"))


def _epilog() -> str:
    from sw.compression.compress import MODEL_DEFAULTS, CompressSettings

    def val(x: object) -> str:
        return x if isinstance(x, str) else f"{x:g}"

    def show(k: str, v: object) -> str:
        if isinstance(v, dict):
            return f"{_opt(k)} " + ",".join(f"{n}={val(x)}" for n, x in v.items())
        return f"{_opt(k)} {val(v)}"

    wrap = textwrap.TextWrapper(width=96, subsequent_indent=" " * 14, break_on_hyphens=False)
    lines = ["per-model defaults (an option not given takes these, else the generic default):"]
    for model, d in MODEL_DEFAULTS.items():
        d = dict(d)
        for glob, per in (("quantizer", "layer_quantizer"), ("bits", "layer_bits")):
            if glob in d and per in d:  # one option: '--quantizer ecsq,ip3=kmeans'
                d[glob] = ",".join([val(d[glob])] + [f"{n}={val(x)}" for n, x in d.pop(per).items()])
        lines.append(wrap.fill(f"  {model:<11} " + " ".join(show(k, v) for k, v in d.items())))
    lines.append(wrap.fill(" " * 14 + "alexnet-fc has no training data here (ImageNet): it is "
                           "pruned straight to Deep Compression Table 4's densities and quantized "
                           "without retraining; its error fields are null."))
    lines.append(wrap.fill(f"  {'model file':<11} --density: 25% for the output layer and hidden "
                           "layers under 10,000 weights, 9% for larger ones (Deep Compression "
                           "Tables 2-4); one-shot (no training data) 50% for every layer; "
                           "--bits 4; no dense epochs; host nodes frozen; otherwise generic."))
    generic = [show(k, v) for k, v in sorted(vars(CompressSettings()).items())
               if isinstance(v, int | float) and not isinstance(v, bool) and k != "kmeans_max_iter"]
    lines.append(wrap.fill(f"  {'generic':<11} " + ", ".join(generic)))
    lines += ["examples:",
              "  eie compress --model lenet300 --data ~/mnist --out build/lenet300",
              "  eie compress --model lenet300 --limit-train 5000 --epochs 3 --out /tmp/quick",
              "  eie compress --model mynet.onnx --data mydata.npz --out build/mynet",
              "  eie compress --model alexnet-fc --weights alexnet.pth --out build/alexnet-fc"]
    return "\n".join(lines)


def parse_layer_values(spec: str | None, option: str, kind: type = float,
                       allow_default: bool = False) -> tuple[object, dict]:
    """'a=1,b=2' or a JSON file -> (default or None, {layer: value})."""
    if spec is None:
        return None, {}
    path = Path(spec)
    if "=" not in spec and path.suffix == ".json":
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise DataError(f"{option} {spec}: cannot read JSON ({e})") from None
        if not isinstance(d, dict):
            raise DataError(f"{option} {spec}: expected a JSON object of layer: value")
        items = [(str(k), v) for k, v in d.items()]
    else:
        items = []
        for tok in filter(None, (t.strip() for t in spec.split(","))):
            k, sep, v = tok.partition("=")
            items.append((k.strip(), v.strip()) if sep else (None, k.strip()))
    default, per_layer = None, {}
    for k, v in items:
        try:
            val = kind(v)
            if kind is int and str(v).strip() != str(val):
                raise ValueError
        except (TypeError, ValueError):
            raise DataError(f"{option}: {v!r} is not a valid {kind.__name__}"
                            + (f" (layer {k})" if k else "")) from None
        if k is None:
            if not allow_default:
                raise DataError(f"{option}: expected layer=value, got {v!r}")
            default = val
        else:
            per_layer[k] = val
    return default, per_layer


def run(args: argparse.Namespace) -> int:
    import torch

    from sw.compression.budget import summary as budget_summary
    from sw.compression.compress import compress_builtin, default_settings
    from sw.compression.footprint import format_footprint
    from sw.compression.modelfile import format_table

    threads = args.threads
    if threads < 1:
        raise DataError(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    _, sensitivity = parse_layer_values(args.sensitivity, "--sensitivity")
    _, density = parse_layer_values(args.density, "--density")
    bits, layer_bits = parse_layer_values(args.bits, "--bits", int, allow_default=True)
    quantizer, layer_quantizer = parse_layer_values(args.quantizer, "--quantizer", str,
                                                    allow_default=True)
    epochs = args.epochs
    overrides = dict(
        lr=args.lr, batch_size=args.batch_size,
        optimizer=args.optimizer, weight_decay=args.weight_decay, prune_iters=args.prune_iters,
        retrain_epochs=args.retrain_epochs, retrain_lr=args.retrain_lr, quality=args.quality,
        sensitivity=sensitivity or None, density=density or None, bits=bits,
        layer_bits=layer_bits or None, init=args.init, finetune_epochs=args.finetune_epochs,
        quantizer=quantizer, layer_quantizer=layer_quantizer or None,
        ecsq_lambda=args.ecsq_lambda, hessian_batches=args.hessian_batches,
        eie_config=args.config, act_bits=args.act_bits, act_phases=args.act_phases, max_loss=args.max_loss, val_fraction=args.val_fraction,
        budget_tries=args.budget_tries, budget_steps=args.budget_steps,
        finetune_lr=args.finetune_lr, distill=args.distill, temperature=args.temperature,
        shift=args.shift,
        index_bits=args.index_bits, seed=args.seed,
        progress=not (args.no_progress or args.quiet))

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    if args.model not in MODELS:
        return _run_network(args, dict(overrides, dense_epochs=epochs), log)
    for opt in ("targets", "task", "act"):
        if getattr(args, opt) is not None:
            raise DataError(f"--{opt} applies to a model file, not the built-in {args.model}")
    if epochs is None and args.weights is not None:
        epochs = 0  # start from the given trained weights
    settings = default_settings(args.model, dense_epochs=epochs, **overrides)
    report = compress_builtin(args.model, args.out, settings, data=args.data, weights=args.weights,
                              limit_train=args.limit_train, limit_test=args.limit_test, log=log,
                              plots=not args.no_plots)
    print(format_table(report["layers"]))
    print(format_footprint(report["onchip"], report["compressed_bytes"]))
    _print_act_quant(report)

    def pct(e: float | None) -> str:
        return "n/a (no test data)" if e is None else f"{100 * e:.2f}%"

    print(f"test error: dense {pct(report['error_dense'])}, pruned {pct(report['error_pruned'])}, "
          f"compressed {pct(report['error_compressed'])}")
    if "budget" in report:
        print(budget_summary(report["budget"]))
    print(f"{report['original_bytes']:,} -> {report['compressed_bytes']:,} bytes "
          f"({args.out}/model.eie): {report['ratio']:.1f}x in {report['timings']['total_s']:.0f} s")
    return 0


def _run_network(args: argparse.Namespace, overrides: dict, log) -> int:
    """``--model FILE``: compress a user's network (sw.compression.network)."""
    from sw.compression.budget import summary as budget_summary
    from sw.compression.compress import format_host_line
    from sw.compression.data import load_dataset
    from sw.compression.footprint import format_footprint
    from sw.compression.modelfile import format_table
    from sw.compression.network import compress_network, format_metrics, network_settings
    from sw.frontends import load_network

    if not Path(args.model).exists():
        raise DataError(f"--model {args.model}: neither a built-in model ({', '.join(MODELS)}) "
                        "nor an existing file")
    if args.weights is not None:
        raise DataError("--weights applies to the built-in models; a model file brings its own")
    if args.targets is not None and args.data is None:
        raise DataError("--targets needs --data (the inputs file)")
    net = load_network(args.model, args.act or "relu")
    data = None if args.data is None else load_dataset(args.data, args.targets, args.task)
    retrain = data is not None and data.x_train is not None
    settings = network_settings(net, retrain, **overrides)
    report = compress_network(net, args.out, settings, data, args.limit_train, args.limit_test, log,
                              plots=not args.no_plots)
    print(format_table(report["layers"]))
    print(format_footprint(report["onchip"], report["compressed_bytes"]))
    _print_act_quant(report)
    print(format_host_line(report))
    if report["mode"] == "one-shot":
        print("one-shot: pruned to the target densities and quantized, no retraining")
    m = report["metrics"]
    if m["original"] is not None:
        print(f"float network ({report['task']}, {report['test_examples']:,} test examples): "
              f"{format_metrics(m['original'])} original, {format_metrics(m['compressed'])} "
              "compressed")
    if "budget" in report:
        print(budget_summary(report["budget"]))
    print(f"{report['original_bytes']:,} -> {report['compressed_bytes']:,} bytes of EIE layers "
          f"({args.out}/model.eie): {report['ratio']:.1f}x in {report['timings']['total_s']:.0f} s")
    return 0


def _print_act_quant(report: dict) -> None:
    """The --act-bits lines: the on-chip bytes saved and the fake-quantized test error."""
    from sw.compression.act_quant import format_act_footprint

    aq = report.get("act_quant")
    if aq is None:
        return
    if "onchip" in aq:
        print(format_act_footprint(aq["onchip"]))
    if aq.get("error_fake_quantized") is not None:
        e = aq["error_fake_quantized"]
        what = f"{100 * e:.2f}%" if report.get("task", "classification") == "classification" \
            else f"{e:.4g} (RMSE)"
        print(f"test error with {aq['act_bits']}-bit activations and codebooks fake-quantized "
              f"(what `eie run --config` with act_bits {aq['act_bits']} approximates): {what}")
