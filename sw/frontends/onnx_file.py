"""ONNX graphs -> :class:`~sw.frontends.ir.Network`.

FC layers: ``Gemm`` (transA = 0, B a constant, any transB/alpha/beta) and ``MatMul`` by a
constant 2-D matrix, with a following ``Add`` of a constant vector folded in as the bias.
Host operators: Conv, MaxPool, AveragePool, GlobalAveragePool, BatchNormalization, Relu, Gelu,
Tanh, Sigmoid, Softmax, LogSoftmax, Add/Mul (two tensors or a constant), MatMul of two tensors,
Flatten, Reshape (constant shape); Identity and Dropout are inference no-ops. ``Constant``
nodes and initializers are constants. One graph input (besides initializers), one output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sw.errors import DataError
from sw.frontends.ir import INPUT, Network, Node

SUPPORTED = ("Gemm", "MatMul", "Add", "Mul", "Relu", "Tanh", "Sigmoid", "Gelu", "Softmax",
             "LogSoftmax", "Conv", "MaxPool", "AveragePool", "GlobalAveragePool",
             "BatchNormalization", "Flatten", "Reshape", "Identity", "Dropout", "Constant")
_SIMPLE = {"Relu": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "Identity": "identity",
           "Dropout": "identity", "GlobalAveragePool": "global_avg_pool"}


def unsupported(path, name: str, op: str, why: str = "") -> DataError:
    return DataError(f"{Path(path).name}: node {name!r} (op {op}) is not supported"
                     f"{': ' + why if why else ''}: supported ops are {', '.join(SUPPORTED)}")


def load_onnx(path: str | Path, model=None) -> Network:
    import onnx
    from onnx import numpy_helper

    if model is None:
        try:
            model = onnx.load_model(str(path))
        except Exception as e:  # protobuf DecodeError and friends
            raise DataError(f"{path}: not a readable ONNX model ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''})") from None
    g = model.graph
    consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1 or len(g.output) != 1:
        raise DataError(f"{path}: the graph has {len(inputs)} inputs and {len(g.output)} outputs; "
                        "only single-input, single-output networks are supported")
    value: dict[str, str] = {inputs[0].name: INPUT}  # ONNX value name -> IR value name
    dims = inputs[0].type.tensor_type.shape.dim
    input_shape = None
    if len(dims) > 1 and all(d.HasField("dim_value") for d in dims[1:]):
        input_shape = tuple(int(d.dim_value) for d in dims[1:])

    nodes: list[Node] = []
    onnx_nodes = list(g.node)
    consumers: dict[str, list] = {}
    for n in onnx_nodes:
        for v in n.input:
            consumers.setdefault(v, []).append(n)
    folded: set[int] = set()  # ids of Add nodes folded into a MatMul as its bias
    for idx, n in enumerate(onnx_nodes):
        if id(n) in folded:
            continue
        name = n.name or f"{n.op_type}_{idx}"
        attrs = {a.name: _text(onnx.helper.get_attribute_value(a)) for a in n.attribute}
        if n.op_type == "Constant":
            if "value" not in attrs:
                raise unsupported(path, name, n.op_type, "only tensor-valued Constants")
            consts[n.output[0]] = numpy_helper.to_array(attrs["value"])
            continue
        if n.op_type not in SUPPORTED:
            raise unsupported(path, name, n.op_type)
        data = [v for v in n.input if v and v not in consts]
        for v in data:
            if v not in value:
                raise DataError(f"{path}: node {name!r} reads {v!r}, which no earlier node computes")
        ins = [value[v] for v in data]

        def const(i: int, what: str, node=n, name=name) -> np.ndarray:
            if len(node.input) <= i or node.input[i] not in consts:
                raise unsupported(path, name, node.op_type, f"its {what} must be a constant")
            return consts[node.input[i]]

        op, params, a = None, {}, {}
        match n.op_type:
            case "Gemm":
                if attrs.get("transA", 0):
                    raise unsupported(path, name, "Gemm", "transA = 1")
                w = const(1, "B matrix").astype(np.float32) * attrs.get("alpha", 1.0)
                w = w if attrs.get("transB", 0) else w.T
                params = {"weight": w}
                if len(n.input) > 2 and n.input[2]:
                    c = const(2, "C (bias)").astype(np.float32) * attrs.get("beta", 1.0)
                    params["bias"] = np.broadcast_to(c.reshape(-1), (w.shape[0],))
                op = "linear"
            case "MatMul":
                if n.input[1] in consts and consts[n.input[1]].ndim == 2:
                    op, params = "linear", {"weight": consts[n.input[1]].T}
                    nxt = consumers.get(n.output[0], [])
                    if len(nxt) == 1 and nxt[0].op_type == "Add" and n.output[0] not in {o.name for o in g.output}:
                        add = nxt[0]
                        other = [v for v in add.input if v != n.output[0]]
                        if len(other) == 1 and other[0] in consts and \
                                consts[other[0]].size == params["weight"].shape[0]:
                            params["bias"] = consts[other[0]].reshape(-1)
                            folded.add(id(add))
                            value[add.output[0]] = name
                elif len(ins) == 2:
                    op = "matmul"
                else:
                    raise unsupported(path, name, "MatMul", "a constant operand must be a 2-D matrix")
            case "Add" | "Mul":
                op = n.op_type.lower()
                if len(ins) == 1:  # a tensor and a constant (either order: both commute)
                    params = {"other": consts[next(v for v in n.input if v in consts)]}
            case "Relu" | "Tanh" | "Sigmoid" | "Identity" | "Dropout" | "GlobalAveragePool":
                op = _SIMPLE[n.op_type]
            case "Gelu":
                op, a = "gelu", {"approximate": attrs.get("approximate", "none")}
            case "Softmax" | "LogSoftmax":
                # opset < 13: default axis 1 and the input flattened from it (the same
                # thing for the 2-D logits this is used on)
                op = "softmax" if n.op_type == "Softmax" else "log_softmax"
                a = {"axis": int(attrs.get("axis", -1 if _opset(model) >= 13 else 1))}
            case "Conv":
                w = const(1, "weight")
                if w.ndim != 4:
                    raise unsupported(path, name, "Conv", f"only 2-D convolutions (weight is {w.ndim}-D)")
                _check_auto_pad(path, name, n.op_type, attrs)
                params = {"weight": w}
                if len(n.input) > 2 and n.input[2]:
                    params["bias"] = const(2, "bias")
                op, a = "conv2d", {"stride": tuple(attrs.get("strides", (1, 1))),
                                   "dilation": tuple(attrs.get("dilations", (1, 1))),
                                   "groups": int(attrs.get("group", 1)),
                                   "pads": _pads(attrs)}
            case "MaxPool" | "AveragePool":
                _check_auto_pad(path, name, n.op_type, attrs)
                k = tuple(attrs["kernel_shape"])
                if len(k) != 2:
                    raise unsupported(path, name, n.op_type, "only 2-D pooling")
                if len(n.output) > 1 and n.output[1]:
                    raise unsupported(path, name, n.op_type, "the Indices output")
                a = {"kernel": k, "stride": tuple(attrs.get("strides", k)), "pads": _pads(attrs),
                     "ceil_mode": bool(attrs.get("ceil_mode", 0))}
                if n.op_type == "MaxPool":
                    op = "max_pool2d"
                    a["dilation"] = tuple(attrs.get("dilations", (1, 1)))
                else:
                    op = "avg_pool2d"
                    a["count_include_pad"] = bool(attrs.get("count_include_pad", 0))
            case "BatchNormalization":
                op = "batch_norm"
                params = {"weight": const(1, "scale"), "bias": const(2, "B"),
                          "mean": const(3, "mean"), "var": const(4, "var")}
                a = {"eps": float(attrs.get("epsilon", 1e-5))}
            case "Flatten":
                axis = int(attrs.get("axis", 1))
                if axis != 1:
                    raise unsupported(path, name, "Flatten", f"axis {axis} (only 1)")
                op, a = "flatten", {"start_dim": 1, "end_dim": -1}
            case "Reshape":
                op, a = "reshape", {"shape": tuple(int(s) for s in const(1, "shape"))}
        if len(ins) != (2 if op == "matmul" or (op in ("add", "mul") and not params) else 1):
            raise unsupported(path, name, n.op_type, f"it reads {len(ins)} tensors")
        nodes.append(Node(name, op, ins, a, params))
        value[n.output[0]] = name
    out = g.output[0].name
    if out not in value:
        raise DataError(f"{path}: the graph output {out!r} is not computed by a supported node")
    return Network(nodes, value[out], input_shape, str(path), "onnx")


def _text(v):
    """ONNX string attributes come back as bytes: text, as the IR (and its JSON) holds it."""
    return v.decode() if isinstance(v, bytes) else v


def _opset(model) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=13)


def _pads(attrs: dict) -> tuple[int, int, int, int]:
    p = tuple(int(v) for v in attrs.get("pads", (0, 0, 0, 0)))  # (top, left, bottom, right)
    return p if len(p) == 4 else (0, 0, 0, 0)


def _check_auto_pad(path, name: str, op: str, attrs: dict) -> None:
    ap = attrs.get("auto_pad", b"NOTSET")
    ap = ap.decode() if isinstance(ap, bytes) else ap
    if ap not in ("NOTSET", "VALID"):
        raise unsupported(path, name, op, f"auto_pad {ap}")
