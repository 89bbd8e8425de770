"""Networks that are a chain by construction: TorchScript ``nn.Sequential`` modules, bare
state_dicts of Linear layers, and the project's own ``model.eie``.

TorchScript: the module structure is read, not the graph (no tracing, no code run): the file
must hold an ``nn.Sequential`` (nested Sequentials allowed) of Linear, ReLU, Tanh, Sigmoid,
GELU, Softmax, LogSoftmax, Identity, Dropout, Flatten, Conv2d, MaxPool2d, AvgPool2d,
AdaptiveAvgPool2d(1), BatchNorm1d/2d. Hyperparameters (stride, dim, ...) come from the module's
attributes, which ``torch.jit.script`` keeps; ``torch.jit.trace`` drops them, so a traced file
is accepted only when its modules need none (Linear and the parameter-free activations).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from sw.compression.modelfile import load_model
from sw.compression.models import load_checkpoint
from sw.errors import DataError
from sw.frontends.ir import INPUT, Network, Node
from sw.qlayer import QuantizedLayer

ACTS = ("relu", "identity", "tanh", "sigmoid", "gelu")
TORCHSCRIPT_MODULES = ("Sequential", "Linear", "ReLU", "Tanh", "Sigmoid", "GELU", "Softmax",
                       "LogSoftmax", "Identity", "Dropout", "Flatten", "Conv2d", "MaxPool2d",
                       "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm1d", "BatchNorm2d")


# -- TorchScript --------------------------------------------------------------------------------

def load_torchscript(path: str | Path) -> Network:
    try:
        with warnings.catch_warnings():  # torch.jit.load is deprecated in favour of torch.export
            warnings.simplefilter("ignore", DeprecationWarning)
            m = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: not a loadable TorchScript file ({msg[:200]})") from None
    name = Path(path).name
    if m.original_name != "Sequential":
        raise DataError(f"{name}: TorchScript module {m.original_name!r} is not an nn.Sequential; "
                        "only Sequential TorchScript files are read (export other modules with "
                        "torch.export.save or torch.onnx.export)")
    nodes: list[Node] = []
    _walk_sequential(m, "", nodes, name)
    prev = INPUT
    for n in nodes:
        n.inputs = [prev]
        prev = n.name
    first = next((n for n in nodes if n.op in ("linear", "conv2d")), None)
    shape = (first.params["weight"].shape[1],) if first is not None and first.op == "linear" \
        and nodes[0] is first else None
    return Network(nodes, prev, shape, str(path), "torchscript")


def _walk_sequential(m, prefix: str, nodes: list[Node], fname: str) -> None:
    for child_name, c in m.named_children():
        name = f"{prefix}{child_name}"
        kind = c.original_name
        if kind == "Sequential":
            _walk_sequential(c, name + ".", nodes, fname)
            continue
        if kind not in TORCHSCRIPT_MODULES:
            raise DataError(f"{fname}: node {name!r} (module {kind}) is not supported: supported "
                            f"modules are {', '.join(TORCHSCRIPT_MODULES)}")

        def hp(attr: str, c=c, name=name, kind=kind):
            v = getattr(c, attr, None)
            if v is None:
                raise DataError(f"{fname}: node {name!r} (module {kind}) has no {attr!r} "
                                "attribute (a traced module keeps none): script it with "
                                "torch.jit.script, or use torch.export")
            return v

        params = {k: v.detach().float().numpy() for k, v in c.named_parameters(recurse=False)}
        params |= {k: v.detach().float().numpy() for k, v in c.named_buffers(recurse=False)
                   if v.is_floating_point()}
        attrs: dict = {}
        match kind:
            case "Linear":
                op = "linear"
            case "ReLU" | "Tanh" | "Sigmoid" | "Identity" | "Dropout":
                op = {"Dropout": "identity"}.get(kind, kind.lower())
            case "GELU":
                op, attrs = "gelu", {"approximate": hp("approximate")}
            case "Softmax" | "LogSoftmax":
                op, attrs = kind.lower().replace("logs", "log_s"), {"axis": hp("dim")}
            case "Flatten":
                op, attrs = "flatten", {"start_dim": hp("start_dim"), "end_dim": hp("end_dim")}
            case "Conv2d":
                if hp("padding_mode") != "zeros" or isinstance(hp("padding"), str):
                    raise DataError(f"{fname}: node {name!r} (module Conv2d): only zero padding "
                                    "given as numbers is supported")
                p = _pair(hp("padding"))
                op, attrs = "conv2d", {"stride": _pair(hp("stride")), "dilation": _pair(hp("dilation")),
                                       "groups": int(hp("groups")), "pads": (p[0], p[1], p[0], p[1])}
            case "MaxPool2d" | "AvgPool2d":
                k = _pair(hp("kernel_size"))
                p = _pair(hp("padding"))
                op = "max_pool2d" if kind == "MaxPool2d" else "avg_pool2d"
                attrs = {"kernel": k, "stride": _pair(hp("stride") or k), "pads": (p[0], p[1], p[0], p[1]),
                         "ceil_mode": bool(hp("ceil_mode"))}
                if op == "max_pool2d":
                    attrs["dilation"] = _pair(hp("dilation"))
                else:
                    attrs["count_include_pad"] = bool(hp("count_include_pad"))
            case "AdaptiveAvgPool2d":
                if _pair(hp("output_size")) != (1, 1):
                    raise DataError(f"{fname}: node {name!r} (module AdaptiveAvgPool2d): only "
                                    "output size 1 is supported")
                op, attrs = "global_avg_pool", {"keepdim": True}
            case _:  # BatchNorm1d / BatchNorm2d
                op, attrs = "batch_norm", {"eps": float(hp("eps"))}
                params = {"weight": params["weight"], "bias": params["bias"],
                          "mean": params["running_mean"], "var": params["running_var"]}
        nodes.append(Node(name, op, [], attrs, params))


def _pair(v) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    return (int(v[0]), int(v[-1]))


# -- a bare state_dict of Linear layers ---------------------------------------------------------

def from_state_dict(sd: Mapping[str, torch.Tensor], act: str = "relu", source: str = "state_dict"
                    ) -> Network:
    """A chain of the ``*.weight`` (2-D) / ``*.bias`` pairs in ``sd``'s order, ``act`` between
    every two layers and none after the last (a state_dict does not record activations)."""
    if act not in ACTS:
        raise DataError(f"unknown activation {act!r} (choose from {', '.join(ACTS)})")
    name = Path(source).name
    weights = [k for k in sd if k.endswith(".weight")]
    for k in weights:
        if sd[k].dim() != 2:
            raise DataError(f"{name}: tensor {k!r} has shape {tuple(sd[k].shape)}: a bare "
                            "state_dict is read as a chain of Linear layers (2-D weights) only; "
                            "export networks with convolutions via torch.export or ONNX")
    known = set(weights) | {k[: -len("weight")] + "bias" for k in weights}
    extra = [k for k in sd if k not in known]
    if extra:
        raise DataError(f"{name}: tensor {extra[0]!r} is not the weight or bias of a Linear "
                        "layer (a bare state_dict is read as a chain of Linear layers)")
    if not weights:
        raise DataError(f"{name}: the state_dict holds no '*.weight' tensors")
    nodes: list[Node] = []
    prev, prev_key = INPUT, None
    for i, k in enumerate(weights):
        w = sd[k].detach().float().numpy()
        if prev_key is not None and w.shape[1] != sd[prev_key].shape[0]:
            raise DataError(f"{name}: {prev_key!r} {tuple(sd[prev_key].shape)} does not chain into "
                            f"{k!r} {tuple(w.shape)}: {sd[prev_key].shape[0]} outputs, "
                            f"{w.shape[1]} inputs")
        layer = k[: -len(".weight")]
        params = {"weight": w}
        if f"{layer}.bias" in sd:
            b = sd[f"{layer}.bias"].detach().float().numpy()
            if b.shape != (w.shape[0],):
                raise DataError(f"{name}: '{layer}.bias' has shape {b.shape}, '{k}' has "
                                f"{w.shape[0]} outputs")
            params["bias"] = b
        if not all(np.isfinite(v).all() for v in params.values()):
            raise DataError(f"{name}: layer {layer!r} holds NaN or Inf values")
        nodes.append(Node(layer, "linear", [prev], {}, params))
        prev, prev_key = layer, k
        if i < len(weights) - 1:
            nodes.append(Node(f"{layer}.{act}", act, [prev], {"approximate": "none"} if act == "gelu" else {}))
            prev = nodes[-1].name
    return Network(nodes, prev, (nodes[0].params["weight"].shape[1],), source, "state_dict")


def load_state_dict(path: str | Path, act: str = "relu") -> Network:
    return from_state_dict(load_checkpoint(path), act, str(path))


# -- the project's own compressed model ---------------------------------------------------------

def load_eie_model(path: str | Path) -> Network:
    """``model.eie`` -> the network its quantized layers stand for (weights ``codebook[indices]``).

    A file written by ``eie compress --model FILE`` holds the whole network in
    ``meta["network"]`` (graph and host parameters, :mod:`sw.frontends.stored`): that network
    is rebuilt. Otherwise the file is a chain (:func:`network_from_layers`).
    """
    layers, meta = load_model(path)
    if isinstance(meta, dict) and "network" in meta:
        from sw.frontends.stored import network_from_meta

        net = network_from_meta(meta["network"], layers, str(path))
    else:
        shape = tuple(meta.get("input_shape") or ()) if isinstance(meta, dict) else ()
        net = network_from_layers(layers, shape or None, str(path))
    bits = meta.get("act_bits") if isinstance(meta, dict) else None
    net.act_bits = bits if isinstance(bits, int) and not isinstance(bits, bool) else None
    return net


def network_from_layers(layers: list[QuantizedLayer], input_shape: tuple[int, ...] | None = None,
                        source: str = "layers", fmt: str = "eie") -> Network:
    """A chain of quantized layers as a network: each layer's ``relu`` flag and ``meta``
    (pooling / stride / padding of a conv, :mod:`sw.compression.models`) give the nodes; a
    Flatten precedes the first FC layer after a convolution."""
    nodes: list[Node] = []
    prev, spatial = INPUT, False  # spatial: the value is (B, C, H, W)
    for q in layers:
        m = q.meta or {}
        params = {"weight": q.dense()} | ({} if q.bias is None else {"bias": q.bias})
        if q.kind == "conv":
            p = int(m.get("padding", 0))
            nodes.append(Node(q.name, "conv2d", [prev], {"stride": (int(m.get("stride", 1)),) * 2,
                                                         "pads": (p, p, p, p)}, params))
            spatial = True
        else:
            if spatial:
                nodes.append(Node(f"{q.name}.flatten", "flatten", [prev]))
                prev, spatial = nodes[-1].name, False
            nodes.append(Node(q.name, "linear", [prev], {}, params))
        prev = q.name
        if q.relu:
            nodes.append(Node(f"{q.name}.relu", "relu", [prev]))
            prev = nodes[-1].name
        if int(m.get("pool", 0)):
            k = int(m["pool"])
            nodes.append(Node(f"{q.name}.pool", "max_pool2d", [prev], {"kernel": (k, k), "stride": (k, k)}))
            prev = nodes[-1].name
    shape = input_shape
    if shape is None and layers and layers[0].kind == "linear":
        shape = (layers[0].n_in,)
    if shape is not None and layers and layers[0].kind == "linear" and len(shape) > 1:
        nodes.insert(0, Node("input.flatten", "flatten", [INPUT]))
        nodes[1].inputs = ["input.flatten"]
    return Network(nodes, prev, shape, source, fmt)
