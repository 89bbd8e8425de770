"""The network IR every loader produces: an ordered graph of nodes, a float reference executor,
and the split into EIE segments (chains of FC layers) and host segments (everything else).

A :class:`Node` is one operation in a small canonical vocabulary (:data:`OPS`); its ``inputs``
name values: ``"input"`` (the network's one input) or another node's name (each node makes one
value). Parameters are float32 NumPy arrays. Nodes are in topological order.

EIE computes ``b = ReLU(W a + bias)`` or ``b = W a + bias`` per layer (EIE Sec. III; the
``relu`` bit of docs/format.md), one layer's output being the next layer's input. So an EIE
segment is a maximal chain of ``linear`` nodes whose in-between activation is ReLU or identity
and whose intermediate values nobody else reads; every other node runs on the host in PyTorch.
Each node records where it goes (``placement``) and why (``reason``).

Assumption: ``reshape`` never changes the batch dimension (its first target size is replaced
by the batch size), so a model exported with batch 1 runs any batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from sw.errors import DataError

INPUT = "input"

# op kind -> what the reason strings call it
OPS: dict[str, str] = {
    "linear": "FC layer", "relu": "ReLU", "identity": "Identity", "tanh": "Tanh",
    "sigmoid": "Sigmoid", "gelu": "GELU", "softmax": "Softmax", "log_softmax": "LogSoftmax",
    "conv2d": "Conv", "max_pool2d": "MaxPool", "avg_pool2d": "AveragePool",
    "global_avg_pool": "GlobalAveragePool", "batch_norm": "BatchNormalization",
    "add": "Add", "mul": "Mul", "matmul": "MatMul of two tensors", "flatten": "Flatten",
    "reshape": "Reshape",
}
_CHAIN_ACTS = ("relu", "identity")  # activations EIE applies between FC layers
_HOST_REASON = {
    "conv2d": "not a matrix-vector product",
    "max_pool2d": "pooling is not a matrix-vector product",
    "avg_pool2d": "pooling is not a matrix-vector product",
    "global_avg_pool": "pooling is not a matrix-vector product",
    "batch_norm": "a per-channel affine map, not a matrix-vector product",
    "softmax": "a normalisation over the outputs, not an EIE activation",
    "log_softmax": "a normalisation over the outputs, not an EIE activation",
    "add": "elementwise arithmetic (e.g. a residual), not a matrix-vector product",
    "mul": "elementwise arithmetic, not a matrix-vector product",
    "matmul": "both operands are activations, EIE needs a fixed weight matrix",
}


@dataclass
class Node:
    name: str
    op: str  # a key of OPS
    inputs: list[str]
    attrs: dict = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    placement: str = ""  # "eie" or "host", set by Network.split()
    reason: str = ""

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"node {self.name}: unknown op {self.op!r}")
        # own writable copies (loaders hand views of read-only buffers)
        self.params = {k: np.array(v, dtype=np.float32) for k, v in self.params.items()}


class FCLayer(NamedTuple):
    """One EIE layer as the compression pipeline and the packer consume it."""

    name: str
    weight: np.ndarray  # float32 (out, in)
    bias: np.ndarray | None  # float32 (out,) or None
    relu: bool


@dataclass
class Segment:
    """A contiguous run of nodes that goes to one place. ``inputs``: values read from outside
    the segment; ``output``: the value it hands on (its last node's)."""

    index: int
    kind: str  # "eie" or "host"
    nodes: list[Node]
    inputs: list[str]
    output: str

    def fc_layers(self) -> list[FCLayer]:
        """The FC layers of an EIE segment, ReLU flags folded in."""
        layers = []
        for n in self.nodes:
            if n.op == "linear":
                layers.append(FCLayer(n.name, n.params["weight"], n.params.get("bias"), False))
            elif n.op == "relu":
                layers[-1] = layers[-1]._replace(relu=True)
        return layers


# segment index, float32 batch (B, n_in) -> float32 batch (B, n_out)
SegmentRunner = Callable[[int, np.ndarray], np.ndarray]


@dataclass
class Network:
    nodes: list[Node]
    output: str  # the value the network returns
    input_shape: tuple[int, ...] | None = None  # one example's shape (no batch), if known
    source: str = ""  # file the network came from (for messages)
    format: str = ""  # "onnx", "torch.export", "torchscript", "state_dict", "eie"
    segments: list[Segment] = field(default_factory=list)
    act_bits: int | None = None  # activations it was trained for (eie compress --act-bits)

    def __post_init__(self) -> None:
        seen = {INPUT}
        for n in self.nodes:
            missing = [i for i in n.inputs if i not in seen]
            if missing or n.name in seen:
                what = f"reads {missing[0]!r} before it is computed" if missing else "is a duplicate name"
                raise DataError(f"{self.source or 'network'}: node {n.name!r} {what}")
            seen.add(n.name)
        if self.output not in seen:
            raise DataError(f"{self.source or 'network'}: output {self.output!r} is not computed")
        self.segments = self.split()

    # -- the host/EIE split --------------------------------------------------------------------

    def split(self) -> list[Segment]:
        """Mark every node eie/host with a reason; return the segments in execution order."""
        consumers: dict[str, list[int]] = {}
        for i, n in enumerate(self.nodes):
            for v in n.inputs:
                consumers.setdefault(v, []).append(i)
        consumers.setdefault(self.output, []).append(-1)  # the caller reads it

        def only_next(i: int) -> bool:
            """Node i's value is read by node i + 1 alone."""
            return consumers.get(self.nodes[i].name, []) == [i + 1]

        for n in self.nodes:
            n.placement, n.reason = "host", ""
        chain: list[int | None] = [None] * len(self.nodes)  # first node of each node's FC chain
        i = 0
        while i < len(self.nodes):
            n = self.nodes[i]
            if n.op != "linear":
                i += 1
                continue
            # a chain: linear [relu|identity]* linear [relu|identity]* ... (ends after a linear
            # or a ReLU whose value leaves the chain)
            j = i
            while True:
                chain[j] = i
                self.nodes[j].placement = "eie"
                self.nodes[j].reason = "FC layer: sparse matrix-vector product on EIE"
                k = j
                while only_next(k) and self.nodes[k + 1].op in _CHAIN_ACTS:
                    k += 1
                    a = self.nodes[k]
                    a.placement, chain[k] = "eie", i
                    if a.op == "relu":
                        a.reason = "ReLU after FC layer: EIE's activation (the layer's relu bit)"
                    else:
                        a.reason = f"{OPS[a.op]} between FC layers: an inference no-op"
                if only_next(k) and self.nodes[k + 1].op == "linear":
                    j = k + 1
                    continue
                # trailing identities after the last FC layer stay on the host
                while self.nodes[k].op == "identity":
                    self.nodes[k].placement, chain[k], k = "host", None, k - 1
                break
            i = k + 1
        for idx, n in enumerate(self.nodes):
            if n.placement == "host":
                n.reason = self._host_reason(idx, consumers)
        return self._segments(chain)

    def _host_reason(self, idx: int, consumers: dict[str, list[int]]) -> str:
        n = self.nodes[idx]
        name = OPS[n.op]
        prev = self._producer(n.inputs[0]) if n.inputs else None
        after_fc = prev is not None and prev.placement == "eie"
        feeds_fc = any(c < len(self.nodes) and self.nodes[c].op == "linear"
                       for c in consumers.get(n.name, []))
        if n.op == "linear":
            return "FC layer: runs on the host"  # never reached: every linear goes to EIE
        if n.op in ("flatten", "reshape", "identity"):
            if feeds_fc:
                return f"{name} before an FC layer: a host no-op reshape"
            return f"{name}: a host no-op reshape"
        if n.op in ("tanh", "sigmoid", "gelu"):
            if after_fc and feeds_fc:
                return f"{name} between FC layers: not ReLU/identity, splits the chain"
            if after_fc:
                return f"{name} after an FC layer: not ReLU/identity (the FC layer goes to EIE with identity output)"
            return f"{name}: not after an FC layer"
        if n.op == "relu":
            if after_fc:
                return "ReLU after an FC layer whose output is also read elsewhere"
            return f"ReLU after {OPS[prev.op] if prev is not None else 'the input'}: not after an FC layer"
        return f"{name}: {_HOST_REASON[n.op]}"

    def _producer(self, value: str) -> Node | None:
        return next((m for m in self.nodes if m.name == value), None)

    def _segments(self, chain: list[int | None]) -> list[Segment]:
        """Contiguous runs of one placement; two FC chains back to back are two segments."""
        segs: list[Segment] = []
        start = 0
        for i in range(1, len(self.nodes) + 1):
            if i == len(self.nodes) or self.nodes[i].placement != self.nodes[i - 1].placement \
                    or chain[i] != chain[i - 1]:
                nodes = self.nodes[start:i]
                kind = nodes[0].placement
                inside = {m.name for m in nodes}
                ins = list(dict.fromkeys(v for m in nodes for v in m.inputs if v not in inside))
                segs.append(Segment(len(segs), kind, nodes, ins, nodes[-1].name))
                start = i
        return segs

    # -- EIE layers in and out -----------------------------------------------------------------

    def eie_segments(self) -> list[Segment]:
        return [s for s in self.segments if s.kind == "eie"]

    def eie_layers(self) -> list[list[FCLayer]]:
        """Per EIE segment, its FC layers: (name, weight float32 (out, in), bias | None, relu).

        The arrays are the network's own (no copy: AlexNet's fc6 is 150 MB); change weights
        with :meth:`with_eie_layers`, not in place."""
        return [s.fc_layers() for s in self.eie_segments()]

    def with_eie_layers(self, new: Sequence[Sequence[FCLayer]] | Callable[[int, FCLayer], FCLayer]
                        ) -> Network:
        """A copy whose EIE layers' weights/biases are replaced (e.g. by the quantized ones):
        ``new`` is a list like :meth:`eie_layers` returns, or ``fn(segment_index, layer) ->
        layer``. Shapes and the relu flags must stay as they are."""
        old = self.eie_layers()
        if callable(new):
            new = [[new(si, fc) for fc in seg] for si, seg in enumerate(old)]
        if [len(s) for s in new] != [len(s) for s in old]:
            raise DataError(f"with_eie_layers: expected {[len(s) for s in old]} layers per "
                            f"segment, got {[len(s) for s in new]}")
        by_name = {}
        for seg_old, seg_new in zip(old, new, strict=True):
            for o, n in zip(seg_old, seg_new, strict=True):
                w = np.asarray(n.weight, np.float32)
                b = None if n.bias is None else np.asarray(n.bias, np.float32)
                if w.shape != o.weight.shape or (b is not None and b.shape != (w.shape[0],)):
                    raise DataError(f"with_eie_layers: layer {o.name}: weight {w.shape} / bias "
                                    f"{None if b is None else b.shape}, expected {o.weight.shape}")
                if n.relu != o.relu:
                    raise DataError(f"with_eie_layers: layer {o.name}: relu flag changed")
                by_name[o.name] = {"weight": w} | ({} if b is None else {"bias": b})
        nodes = [replace(n, params=by_name.get(n.name, n.params), attrs=dict(n.attrs))
                 for n in self.nodes]
        return Network(nodes, self.output, self.input_shape, self.source, self.format)

    # -- execution -----------------------------------------------------------------------------

    def check_input(self, x: np.ndarray | torch.Tensor) -> None:
        """DataError unless ``x`` is a batch of examples of the network's input shape."""
        if self.input_shape is None:
            return
        got = tuple(x.shape[1:])
        if got != tuple(self.input_shape):
            raise DataError(f"{self.source or 'network'}: input batch has shape {tuple(x.shape)} "
                            f"(examples {got}), the network takes examples of shape "
                            f"{tuple(self.input_shape)}")

    def run_float(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """The float32 reference: every node in PyTorch. ``x``: a batch (B, *input_shape)."""
        return self.run_hybrid(x, None)

    def run_hybrid(self, x: np.ndarray | torch.Tensor, eie: SegmentRunner | None) -> np.ndarray:
        """Host segments in PyTorch, each EIE segment through ``eie(segment_index, x)``
        (``x`` float32 (B, n_in) -> float32 (B, n_out)); ``eie=None`` runs them in float too."""
        self.check_input(x)
        env = {INPUT: torch.as_tensor(np.asarray(x, np.float32) if not torch.is_tensor(x) else x,
                                      dtype=torch.float32)}
        eie_index = 0
        with torch.no_grad():
            for seg in self.segments:
                if seg.kind == "eie" and eie is not None:
                    a = env[seg.inputs[0]]
                    if a.dim() != 2:
                        raise DataError(f"EIE segment {seg.index} ({seg.nodes[0].name}) gets a "
                                        f"{a.dim()}-D tensor {tuple(a.shape)}, expected (batch, n_in)")
                    y = np.asarray(eie(eie_index, a.numpy().astype(np.float32)), np.float32)
                    n_out = seg.fc_layers()[-1].weight.shape[0]
                    if y.shape != (a.shape[0], n_out):
                        raise DataError(f"EIE segment {eie_index} runner returned shape {y.shape}, "
                                        f"expected {(a.shape[0], n_out)}")
                    env[seg.output] = torch.from_numpy(y)
                else:
                    for n in seg.nodes:
                        env[n.name] = run_node(n, [env[v] for v in n.inputs])
                eie_index += seg.kind == "eie"
        return env[self.output].numpy()

    def describe(self) -> str:
        """One line per node: segment, placement, op, name, reason."""
        lines = []
        for s in self.segments:
            for n in s.nodes:
                lines.append(f"[{s.index}] {s.kind:4} {n.op:15} {n.name:24} {n.reason}")
        return "\n".join(lines)


# -- the float executor (one place that says what every op means) --------------------------------


def _pad4(x: torch.Tensor, pads, value: float = 0.0):
    """ONNX-style pads (top, left, bottom, right) -> symmetric (ph, pw) for the op, or pad x."""
    t, left, b, r = pads
    if t == b and left == r:
        return x, (t, left)
    return F.pad(x, (left, r, t, b), value=value), (0, 0)


def run_node(n: Node, xs: list[torch.Tensor], params: dict[str, torch.Tensor] | None = None
             ) -> torch.Tensor:
    """Node ``n`` on its input values ``xs``; ``params`` replaces ``n.params`` (as tensors)."""
    p = params if params is not None else {k: torch.from_numpy(v) for k, v in n.params.items()}
    a = n.attrs
    x = xs[0]
    match n.op:
        case "linear":
            return F.linear(x, p["weight"], p.get("bias"))
        case "relu":
            return F.relu(x)
        case "identity":
            return x
        case "tanh":
            return torch.tanh(x)
        case "sigmoid":
            return torch.sigmoid(x)
        case "gelu":
            return F.gelu(x, approximate=a.get("approximate", "none"))
        case "softmax":
            return F.softmax(x, dim=a.get("axis", -1))
        case "log_softmax":
            return F.log_softmax(x, dim=a.get("axis", -1))
        case "conv2d":
            x, pad = _pad4(x, a.get("pads", (0, 0, 0, 0)))
            return F.conv2d(x, p["weight"], p.get("bias"), tuple(a.get("stride", (1, 1))), pad,
                            tuple(a.get("dilation", (1, 1))), a.get("groups", 1))
        case "max_pool2d":
            x, pad = _pad4(x, a.get("pads", (0, 0, 0, 0)), float("-inf"))
            return F.max_pool2d(x, tuple(a["kernel"]), tuple(a.get("stride") or a["kernel"]), pad,
                                tuple(a.get("dilation", (1, 1))), a.get("ceil_mode", False))
        case "avg_pool2d":
            x, pad = _pad4(x, a.get("pads", (0, 0, 0, 0)))
            return F.avg_pool2d(x, tuple(a["kernel"]), tuple(a.get("stride") or a["kernel"]), pad,
                                a.get("ceil_mode", False), a.get("count_include_pad", True))
        case "global_avg_pool":
            return x.mean(dim=(-2, -1), keepdim=a.get("keepdim", True))
        case "batch_norm":
            return F.batch_norm(x, p["mean"], p["var"], p.get("weight"), p.get("bias"), False,
                                0.0, a.get("eps", 1e-5))
        case "add" | "mul":
            y = xs[1] if len(xs) > 1 else p["other"]
            return x + y if n.op == "add" else x * y
        case "matmul":
            return torch.matmul(x, xs[1])
        case "flatten":
            return torch.flatten(x, a.get("start_dim", 1), a.get("end_dim", -1))
        case "reshape":
            shape = list(a["shape"])
            shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]  # ONNX 0 = keep
            return x.reshape(x.shape[0], *shape[1:])
    raise AssertionError(n.op)  # Node.__post_init__ admits only OPS
