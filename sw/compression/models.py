"""Networks the pipeline compresses: built-in LeNets, AlexNet's classifier head, any module.

Built-in networks are :class:`ChainNet` instances: a chain of Linear/Conv2d layers, each
optionally followed by ReLU and max-pooling, described by :class:`LayerSpec` records. The same
records travel in each :class:`~sw.qlayer.QuantizedLayer`'s ``meta``, so a network is rebuilt
from a model file alone (:func:`build_from_quantized`) and runs the very same operations.

- ``lenet300``: LeNet-300-100 (784-300-100-10, ReLU), 266K weights (Deep Compression Table 2).
- ``lenet5``: Caffe's LeNet-5 variant: conv 20 5x5, max-pool 2, conv 50 5x5, max-pool 2,
  fc 500 + ReLU, fc 10: 431K parameters (Table 3). Caffe puts no ReLU after the convolutions.
- ``alexnet-fc``: AlexNet's classifier head fc6 9216x4096, fc7 4096x4096, fc8 4096x1000, read
  from a torchvision-format state_dict (``classifier.1/4/6.weight|bias``) without torchvision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sw.errors import DataError
from sw.qlayer import QuantizedLayer


@dataclass(frozen=True)
class LayerSpec:
    """One weight layer of a chain and what follows it (ReLU, then max-pool)."""

    name: str
    kind: str  # "linear" (weight out x in) or "conv" (weight out x in x kh x kw)
    shape: tuple[int, ...]
    bias: bool = True
    relu: bool = False
    pool: int = 0  # max-pool kernel = stride after the activation; 0 = none
    stride: int = 1
    padding: int = 0

    def meta(self) -> dict:
        """What a QuantizedLayer carries to rebuild this layer (see build_from_quantized)."""
        m: dict = {"relu": self.relu}
        if self.kind == "conv":
            m.update(pool=self.pool, stride=self.stride, padding=self.padding)
        return m


class ChainNet(nn.Module):
    """A feed-forward chain: flatten before the first Linear after a conv, ReLU/pool per spec."""

    def __init__(self, specs: list[LayerSpec], input_shape: tuple[int, ...] | None = None):
        super().__init__()
        self.specs = list(specs)
        self.input_shape = input_shape
        for s in self.specs:
            if s.kind == "linear":
                layer: nn.Module = nn.Linear(s.shape[1], s.shape[0], bias=s.bias)
            elif s.kind == "conv":
                layer = nn.Conv2d(s.shape[1], s.shape[0], tuple(s.shape[2:]), stride=s.stride,
                                  padding=s.padding, bias=s.bias)
            else:
                raise DataError(f"layer {s.name}: unknown layer kind {s.kind!r}")
            key = _module_key(s.name)
            if hasattr(self, key):
                raise DataError(f"layer name {s.name!r} is used twice or is reserved")
            self.add_module(key, layer)  # state_dict keys: "<name>.weight", "<name>.bias"

    def layer(self, name: str) -> nn.Module:
        return getattr(self, _module_key(name))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for s in self.specs:
            if s.kind == "linear" and x.dim() > 2:
                x = x.flatten(1)
            x = self.layer(s.name)(x)
            if s.relu:
                x = F.relu(x)
            if s.pool:
                x = F.max_pool2d(x, s.pool)
        return x


def _module_key(name: str) -> str:
    return name.replace(".", "_")  # module names cannot hold dots


# -- built-in networks ------------------------------------------------------------------------

MNIST_SHAPE = (1, 28, 28)

BUILTIN_SPECS: dict[str, list[LayerSpec]] = {
    "lenet300": [
        LayerSpec("ip1", "linear", (300, 784), relu=True),
        LayerSpec("ip2", "linear", (100, 300), relu=True),
        LayerSpec("ip3", "linear", (10, 100)),
    ],
    "lenet5": [
        LayerSpec("conv1", "conv", (20, 1, 5, 5), pool=2),
        LayerSpec("conv2", "conv", (50, 20, 5, 5), pool=2),
        LayerSpec("ip1", "linear", (500, 800), relu=True),
        LayerSpec("ip2", "linear", (10, 500)),
    ],
    "alexnet-fc": [
        LayerSpec("fc6", "linear", (4096, 9216), relu=True),
        LayerSpec("fc7", "linear", (4096, 4096), relu=True),
        LayerSpec("fc8", "linear", (1000, 4096)),
    ],
}
BUILTIN_INPUT: dict[str, tuple[int, ...]] = {
    "lenet300": MNIST_SHAPE, "lenet5": MNIST_SHAPE, "alexnet-fc": (9216,),
}
# torchvision's AlexNet: classifier = [Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear]
TORCHVISION_ALEXNET_KEYS = {"fc6": "classifier.1", "fc7": "classifier.4", "fc8": "classifier.6"}


def build_model(name: str) -> ChainNet:
    """A freshly initialised built-in network (``lenet300``, ``lenet5`` or ``alexnet-fc``)."""
    if name not in BUILTIN_SPECS:
        raise DataError(f"unknown model {name!r} (built in: {', '.join(BUILTIN_SPECS)})")
    return ChainNet(BUILTIN_SPECS[name], BUILTIN_INPUT[name])


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# -- checkpoints ----------------------------------------------------------------------------------

def load_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a ``torch.save`` file (plain, or under ``state_dict``/``model``).

    Loaded with ``weights_only=True``: a checkpoint never runs code.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types (pickle, zip, RuntimeError, ...)
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"checkpoint {path} does not load as a PyTorch state_dict: {msg[:200]}") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not obj:
        raise DataError(f"checkpoint {path} holds no state_dict (a mapping of names to tensors)")
    sd = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise DataError(f"checkpoint {path} holds no tensors")
    return sd


def load_into(net: ChainNet, sd: Mapping[str, torch.Tensor], keys: Mapping[str, str] | None = None,
              source: str = "checkpoint") -> None:
    """Copy weights/biases from ``sd`` into ``net``; ``keys`` maps layer name -> key prefix.

    Every expected key must be present with the right shape and finite values.
    """
    keys = keys or {}
    with torch.no_grad():
        for s in net.specs:
            prefix = keys.get(s.name, s.name)
            layer = net.layer(s.name)
            for pname in ("weight", "bias") if s.bias else ("weight",):
                key = f"{prefix}.{pname}"
                if key not in sd:
                    have = ", ".join(sorted(sd)[:8])
                    raise DataError(f"{source} lacks key {key!r} (it has: {have}"
                                    f"{', ...' if len(sd) > 8 else ''})")
                t = sd[key]
                target = getattr(layer, pname)
                if tuple(t.shape) != tuple(target.shape):
                    raise DataError(f"{source}: {key} has shape {tuple(t.shape)}, "
                                    f"expected {tuple(target.shape)}")
                if not torch.isfinite(t).all():
                    raise DataError(f"{source}: {key} holds NaN or Inf values")
                target.copy_(t.to(target.dtype))


def alexnet_fc_from_state_dict(sd: Mapping[str, torch.Tensor], source: str = "checkpoint") -> ChainNet:
    """AlexNet's fc6/fc7/fc8 from torchvision-format keys (``classifier.1/4/6.weight|bias``)."""
    net = build_model("alexnet-fc")
    load_into(net, sd, TORCHVISION_ALEXNET_KEYS, source)
    return net


# -- layers of any module, rebuilding from quantized layers ---------------------------------------

def weight_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The (qualified name, layer) of every Linear and Conv2d, in registration order.

    For a :class:`ChainNet` the names are the specs' names (``ip1``, ``fc6``, ...); a module
    with a ``named_weight_layers()`` method (e.g. :class:`sw.frontends.module.NetworkModule`,
    whose layers are named after the network's nodes) says its own.
    """
    if isinstance(module, ChainNet):
        return [(s.name, module.layer(s.name)) for s in module.specs]
    if callable(getattr(module, "named_weight_layers", None)):
        return list(module.named_weight_layers())
    return [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)]


def layer_meta(module: nn.Module, name: str, layer: nn.Module) -> dict:
    """What a QuantizedLayer records about ``layer`` so that it can be rebuilt."""
    if isinstance(module, ChainNet):
        return next(s for s in module.specs if s.name == name).meta()
    if callable(getattr(module, "layer_meta", None)):
        return dict(module.layer_meta(name))
    if isinstance(layer, nn.Conv2d):
        return {"stride": int(layer.stride[0]), "padding": int(layer.padding[0])}
    return {}


def chain_from_state_dict(sd: Mapping[str, torch.Tensor]) -> ChainNet:
    """A ChainNet holding every 2-D (linear) or 4-D (conv) ``*.weight`` of a bare state_dict.

    A state_dict does not say what lies between the layers; the chain assumes ReLU after every
    layer but the last and no pooling. Pruning and quantization need only the weights.
    """
    specs = []
    for key, w in sd.items():
        if not key.endswith(".weight") or w.dim() not in (2, 4):
            continue
        prefix = key[: -len(".weight")]
        kind = "linear" if w.dim() == 2 else "conv"
        specs.append(LayerSpec(prefix, kind, tuple(w.shape), bias=f"{prefix}.bias" in sd, relu=True))
    if not specs:
        raise DataError("state_dict holds no Linear (2-D) or Conv2d (4-D) '*.weight' tensors")
    specs[-1] = LayerSpec(**{**specs[-1].__dict__, "relu": False})
    net = ChainNet(specs)
    load_into(net, sd, {s.name: s.name for s in specs}, "state_dict")
    return net


def spec_from_quantized(q: QuantizedLayer) -> LayerSpec:
    m = q.meta or {}
    return LayerSpec(q.name, q.kind, q.shape, bias=q.bias is not None, relu=q.relu,
                     pool=int(m.get("pool", 0)), stride=int(m.get("stride", 1)),
                     padding=int(m.get("padding", 0)))


def build_from_quantized(qlayers: list[QuantizedLayer], input_shape: tuple[int, ...] | None = None) -> ChainNet:
    """The network a list of QuantizedLayers stands for (weights ``codebook[indices]``)."""
    net = ChainNet([spec_from_quantized(q) for q in qlayers], input_shape)
    apply_quantized(net, qlayers)
    return net.eval()


def apply_quantized(module: nn.Module, qlayers: list[QuantizedLayer]) -> nn.Module:
    """Overwrite the weights and biases of ``module``'s layers with the quantized ones, by name."""
    layers = dict(weight_layers(module))
    with torch.no_grad():
        for q in qlayers:
            if q.name not in layers:
                raise DataError(f"model has no layer named {q.name!r} (has: {', '.join(layers)})")
            layer = layers[q.name]
            w = torch.from_numpy(np.ascontiguousarray(q.dense()))
            if tuple(layer.weight.shape) != tuple(w.shape):
                raise DataError(f"layer {q.name}: weight shape {tuple(w.shape)} does not match "
                                f"the model's {tuple(layer.weight.shape)}")
            layer.weight.copy_(w)
            if q.bias is not None and layer.bias is not None:
                layer.bias.copy_(torch.from_numpy(q.bias))
    return module
