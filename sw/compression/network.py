"""Deep Compression of a user's network (:class:`sw.frontends.Network`): what
``eie compress --model FILE`` runs.

The FC layers of the network's EIE segments are pruned, quantized and Huffman-coded by the
same pipeline as the built-in networks (:func:`~sw.compression.compress.compress_module`, on
the network's ``nn.Module`` view, :class:`~sw.frontends.module.NetworkModule`); the host nodes
keep their float parameters, frozen. With training data the pipeline retrains (iterative
pruning with retraining, centroid fine-tuning); without, it is one-shot: each layer pruned to
its target density in one step and k-means quantized, nothing retrained. The loss is
cross-entropy for classification data and mean squared error for regression data.

The model file holds the whole network (:mod:`sw.frontends.stored`), so ``load_network`` of
it gives the compressed network back, ready to run hybrid.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import torch

from sw.compression.compress import (
    CompressSettings,
    Log,
    check_writable,
    compress_module,
    settings_from,
    write_outputs,
)
from sw.compression.data import Dataset
from sw.errors import DataError
from sw.frontends import FCLayer, Network
from sw.frontends.module import NetworkModule
from sw.frontends.stored import host_parameter_count

# Default kept fractions, after Deep Compression's Tables 2-4 (with retraining): hidden FC
# layers ~9% (LeNet-300-100 ip1 8%, ip2 9%; AlexNet fc6/fc7 9%), the output layer ~25%
# (LeNet ip3 26%, AlexNet fc8 25%, VGG-16 fc8 23%); small hidden layers (< 10,000 weights,
# smaller than any in the paper) keep 25% too.
DENSITY_HIDDEN, DENSITY_OUTPUT, SMALL_LAYER = 0.09, 0.25, 10_000
# Without retraining, pruning that far loses much accuracy (Han et al., NIPS 2015, Fig. 5:
# retraining is what recovers it), so one-shot defaults keep more.
ONE_SHOT_HIDDEN, ONE_SHOT_OUTPUT = 0.5, 0.5
NETWORK_DEFAULTS: dict = dict(bits=4)  # the generic CompressSettings otherwise (dense_epochs 0)


def fc_layers(net: Network) -> list[FCLayer]:
    """The FC layers of every EIE segment, in network order."""
    return [fc for seg in net.eie_layers() for fc in seg]


def default_densities(net: Network, retrain: bool) -> dict[str, float]:
    """Per-layer target kept fractions for a user's network (see ``DENSITY_*``)."""
    layers = fc_layers(net)
    out = {}
    for i, fc in enumerate(layers):
        last = i == len(layers) - 1
        if retrain:
            d = DENSITY_OUTPUT if last or fc.weight.size < SMALL_LAYER else DENSITY_HIDDEN
        else:
            d = ONE_SHOT_OUTPUT if last else ONE_SHOT_HIDDEN
        out[fc.name] = d
    return out


def network_settings(net: Network, retrain: bool, **overrides) -> CompressSettings:
    """Settings for ``net``: the default densities (:func:`default_densities`), 4-bit weights,
    the generic :class:`CompressSettings` otherwise, with ``overrides`` as for the built-in
    models (None ignored; ``quality`` given alone replaces the per-layer densities; a layer
    given a density or sensitivity keeps the other layers' default densities)."""
    densities = default_densities(net, retrain)
    if overrides.get("density"):
        overrides = {**overrides, "density": {**densities, **overrides["density"]}}
    return settings_from({**NETWORK_DEFAULTS, "density": densities}, **overrides)


def fit_dataset(net: Network, ds: Dataset) -> Dataset:
    """``ds`` shaped for ``net``'s input and checked against its output, or a one-line
    DataError naming both shapes."""
    for part, x in (("x_train", ds.x_train), ("x_val", ds.x_val)):
        if x is not None and x.shape[1:] != ds.x_test.shape[1:]:
            raise DataError(f"{ds.source}: {part} examples have shape {x.shape[1:]}, "
                            f"x_test examples {ds.x_test.shape[1:]}")
    if net.input_shape is not None:
        ds = ds.for_input(net.input_shape)
    name = Path(net.source).name or "network"
    try:
        y = net.run_float(ds.x_test[:2])
    except DataError:
        raise
    except (RuntimeError, ValueError, IndexError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{ds.source}: examples of shape {ds.example_shape} do not fit "
                        f"{name} ({msg[:160]})") from None
    if ds.task == "classification":
        if y.ndim != 2:
            raise DataError(f"{name}: outputs of shape {y.shape[1:]} per example; classification "
                            f"data needs one score per class (or give regression targets)")
        top = max(int(ds.y_test.max(initial=0)),
                  0 if ds.y_train is None else int(ds.y_train.max(initial=0)))
        if top >= y.shape[1]:
            raise DataError(f"{ds.source}: class label {top} but {name} has {y.shape[1]} outputs")
    else:
        per = int(np.prod(y.shape[1:]))
        want = int(np.prod(ds.y_test.shape[1:]))
        if per != want:
            raise DataError(f"{ds.source}: targets have shape {ds.y_test.shape[1:]} per example, "
                            f"{name} outputs {y.shape[1:]}")
    return ds


def compress_network(net: Network, out: str | Path, settings: CompressSettings,
                     data: Dataset | None = None, limit_train: int | None = None,
                     limit_test: int | None = None, log: Log | None = None,
                     plots: bool = True) -> dict:
    """Compress ``net``'s EIE FC layers, write ``out/`` (model.eie with the whole network,
    report.json, table.txt, plots) atomically; returns the report.

    ``plots``: write the weight-distribution plots (matplotlib: seconds even for tiny nets).
    ``data``: test examples for the metrics (accuracy, or RMSE and max error, of the float
    network before and after compression) and, if it has them, training examples for
    retraining; None: one-shot with no metrics.
    """
    log = log or (lambda _msg: None)
    out = Path(out)
    name = Path(net.source).name or "network"
    layers = fc_layers(net)
    if not layers:
        raise DataError(f"{name}: no FC layer runs on EIE, nothing to compress (ops: "
                        f"{', '.join(dict.fromkeys(n.op for n in net.nodes))})")
    names = [fc.name for fc in layers]
    settings.check(names)
    for opt, v in (("--limit-train", limit_train), ("--limit-test", limit_test)):
        if v is not None and v < 1:
            raise DataError(f"{opt} must be >= 1, got {v}")
    check_writable(out)
    task = "classification"
    train = test = val = None
    if data is not None:
        data = fit_dataset(net, data)
        task = data.task
        xte, yte = data.x_test[:limit_test], data.y_test[:limit_test]
        test = (torch.from_numpy(xte), torch.from_numpy(yte))
        if data.x_train is not None and len(data.x_train):
            train = (torch.from_numpy(data.x_train[:limit_train]),
                     torch.from_numpy(data.y_train[:limit_train]))
        if data.x_val is not None:
            val = (torch.from_numpy(data.x_val), torch.from_numpy(data.y_val))
    retrain = train is not None and (settings.retrain_epochs > 0 or settings.finetune_epochs > 0
                                     or settings.dense_epochs > 0)
    mode = "retrain" if retrain else "one-shot"
    torch.manual_seed(settings.seed)
    np.random.seed(settings.seed % 2**32)

    n_host = host_parameter_count(net)
    host_nodes = [n for n in net.nodes if n.placement == "host"]
    log(f"{name}: {len(net.segments)} segments, {len(layers)} FC layers on EIE "
        f"({sum(fc.weight.size for fc in layers):,} weights), {len(host_nodes)} host node(s) "
        f"({n_host:,} float parameters, kept in float32 and frozen)")
    if data is None:
        log("no --data: one-shot, and no accuracy to report")
    else:
        log(f"data {data.source}: {task}, {0 if train is None else len(train[0]):,} training / "
            f"{len(test[0]):,} test examples")
    if not retrain:
        why = ("no training data (x_train/y_train)" if train is None
               else "every training phase has 0 epochs")
        log(f"one-shot: {why}: each layer pruned to its target density in one step and "
            "quantized by k-means, without retraining or centroid fine-tuning")

    def metrics(n: Network) -> dict | None:
        return None if data is None else data.metrics(n.run_float(test[0]), test[1].numpy())

    before = metrics(net)
    meta = {"model": "network", "source": name,
            "input_shape": None if net.input_shape is None else list(net.input_shape)}
    result = compress_module(NetworkModule(net), train, test, settings, layers=names, meta=meta,
                             log=log, task=task, val_data=val)
    q = {ql.name: ql for ql in result.layers}
    compressed = net.with_eie_layers(lambda _si, fc: fc._replace(weight=q[fc.name].dense(),
                                                                  bias=q[fc.name].bias))
    after = metrics(compressed)
    if before is not None:
        log(f"float network: {format_metrics(before)} -> {format_metrics(after)} compressed")
    report = {"model": str(net.source), "format": net.format, "mode": mode, "task": task,
              **result.report,
              "metrics": {"original": before, "compressed": after},
              "network": {"segments": [{"kind": s.kind, "nodes": [n.name for n in s.nodes]}
                                       for s in net.segments],
                          "eie_layers": names},
              "host": {"nodes": [n.name for n in host_nodes], "parameters": n_host,
                       "float32_bytes": 4 * n_host, "trainable": False},
              "environment": {"torch": torch.__version__, "numpy": np.__version__,
                              "threads": torch.get_num_threads(),
                              "python": platform.python_version()}}
    result.report = report
    return write_outputs(result, out, meta, settings.index_bits,
                         None if test is None else test[0], log, network=compressed, plots=plots,
                         eie_config=settings.eie_config)


def format_metrics(m: dict | None) -> str:
    if m is None:
        return "n/a"
    if "accuracy" in m:
        return f"accuracy {100 * m['accuracy']:.2f}%"
    return f"RMSE {m['rmse']:.4g}, max error {m['max_error']:.4g}"
