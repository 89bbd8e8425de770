"""torch.export programs (``torch.export.save`` -> ``.pt2``) -> :class:`~sw.frontends.ir.Network`.

Walks the ATen graph of ``torch.export.load(path)``. FC layers: ``aten.linear``, ``aten.addmm``
and ``aten.mm`` by a parameter (possibly through ``t``/``permute``/``transpose``, as after
``run_decompositions``). Host operators: relu, tanh, sigmoid, gelu, softmax/_softmax,
log_softmax, conv2d/convolution, max_pool2d(_with_indices), avg_pool2d, adaptive_avg_pool2d to
1x1 and mean over H, W (global average pooling), batch_norm /
_native_batch_norm_legit_no_training, add/mul (two tensors or a constant), matmul of two
tensors, flatten, view/reshape/_unsafe_view; dropout, clone, alias, contiguous, detach are
no-ops. Parameters, buffers and lifted constants are constants; one user input, one output.
"""

from __future__ import annotations

import operator
from pathlib import Path

import numpy as np
import torch

from sw.errors import DataError
from sw.frontends.ir import INPUT, Network, Node

_NOOP = {"dropout", "clone", "alias", "contiguous", "detach", "lift_fresh_copy", "_to_copy"}
_SIMPLE = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid"}
_TRANSPOSE = {"t", "permute", "transpose", "numpy_T"}
SUPPORTED = sorted({"linear", "addmm", "mm", "relu", "tanh", "sigmoid", "gelu", "softmax",
                    "_softmax", "log_softmax", "_log_softmax", "conv2d", "convolution",
                    "max_pool2d", "max_pool2d_with_indices", "avg_pool2d", "adaptive_avg_pool2d",
                    "mean", "batch_norm", "_native_batch_norm_legit_no_training", "add", "mul",
                    "matmul", "flatten", "view", "reshape", "_unsafe_view", "t", "permute",
                    "transpose", "getitem"} | _NOOP)


def unsupported(path, name: str, op: str, why: str = "") -> DataError:
    return DataError(f"{Path(path).name}: node {name!r} (op aten.{op}) is not supported"
                     f"{': ' + why if why else ''}: supported ops are {', '.join(SUPPORTED)}")


def _op_name(target) -> str:
    if target is operator.getitem:
        return "getitem"
    packet = getattr(target, "_overloadpacket", None)
    return getattr(packet, "__name__", None) or getattr(target, "__name__", str(target))


def load_torch_export(path: str | Path) -> Network:
    try:
        ep = torch.export.load(str(path))
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: not a loadable torch.export program ({msg[:200]})") from None
    return from_exported_program(ep, str(path))


def from_exported_program(ep, source: str = "<exported program>") -> Network:
    from torch.export.graph_signature import InputKind

    consts: dict[str, np.ndarray] = {}
    user_inputs = []
    for spec in ep.graph_signature.input_specs:
        name = spec.arg.name
        if spec.kind == InputKind.USER_INPUT:
            user_inputs.append(name)
        elif spec.kind in (InputKind.PARAMETER, InputKind.BUFFER):
            t = ep.state_dict[spec.target] if spec.target in ep.state_dict else ep.constants[spec.target]
            consts[name] = t.detach().float().numpy()
        elif spec.kind == InputKind.CONSTANT_TENSOR:
            consts[name] = ep.constants[spec.target].detach().float().numpy()
        else:
            raise DataError(f"{source}: graph input {name!r} of kind {spec.kind.name} is not supported")
    if len(user_inputs) != 1:
        raise DataError(f"{source}: the program takes {len(user_inputs)} inputs; only "
                        "single-input networks are supported")

    value: dict[str, str] = {user_inputs[0]: INPUT}
    tuples: dict[str, str] = {}  # multi-output nodes (batch norm, pool with indices): output 0
    nodes: list[Node] = []
    input_shape = None
    output = None
    for fx in ep.graph.nodes:
        if fx.op == "placeholder":
            if fx.name == user_inputs[0] and "val" in fx.meta:
                input_shape = tuple(int(s) for s in fx.meta["val"].shape[1:])
            continue
        if fx.op == "output":
            outs = fx.args[0]
            if len(outs) != 1:
                raise DataError(f"{source}: the program has {len(outs)} outputs; only one is supported")
            if outs[0].name not in value:
                raise DataError(f"{source}: the output {outs[0].name!r} is not a computed tensor")
            output = value[outs[0].name]
            continue
        if fx.op != "call_function":
            raise unsupported(source, fx.name, str(fx.target), f"node kind {fx.op}")
        op = _op_name(fx.target)
        args = list(fx.args)

        def arg(i: int, default=None, fx=fx, args=args):
            return args[i] if len(args) > i else fx.kwargs.get(_ARG_NAMES.get(i, ""), default)

        def data(a, fx=fx, op=op) -> str:
            if not isinstance(a, torch.fx.Node) or a.name not in value:
                raise unsupported(source, fx.name, op, "an input is not a computed tensor")
            return value[a.name]

        def const(a, what: str, fx=fx, op=op) -> np.ndarray:
            if not isinstance(a, torch.fx.Node) or a.name not in consts:
                raise unsupported(source, fx.name, op, f"its {what} must be a parameter")
            return consts[a.name]

        def is_const(a) -> bool:
            return isinstance(a, torch.fx.Node) and a.name in consts

        kind, ins, attrs, params = None, [], {}, {}
        if op in ("sym_size", "sym_numel"):  # shape arithmetic for a dynamic batch: reshape
            continue                          # keeps the batch dimension anyway
        if op in _TRANSPOSE and is_const(args[0]):
            c = consts[args[0].name]
            if op == "permute":
                c = np.transpose(c, args[1])
            elif op == "transpose":
                c = np.swapaxes(c, args[1], args[2])
            else:
                c = c.T
            consts[fx.name] = c
            continue
        if op == "getitem":
            if args[0].name not in tuples or args[1] != 0:
                if args[0].name in tuples:  # indices / saved statistics nobody reads
                    continue
                raise unsupported(source, fx.name, op)
            value[fx.name] = tuples[args[0].name]
            continue
        if op in _NOOP:
            if op == "dropout" and arg(2, False):
                raise unsupported(source, fx.name, op, "dropout in training mode")
            value[fx.name] = data(args[0])
            continue
        match op:
            case "linear":
                kind, ins = "linear", [data(args[0])]
                params = {"weight": const(args[1], "weight")}
                if arg(2) is not None:
                    params["bias"] = const(arg(2), "bias")
            case "addmm":  # bias + x @ W^T
                if arg(3, 1) != 1 or arg(4, 1) != 1:
                    raise unsupported(source, fx.name, op, "beta/alpha other than 1")
                kind, ins = "linear", [data(args[1])]
                params = {"weight": const(args[2], "matrix").T, "bias": const(args[0], "bias").reshape(-1)}
            case "mm" | "matmul":
                if is_const(args[1]) and consts[args[1].name].ndim == 2:
                    kind, ins, params = "linear", [data(args[0])], {"weight": consts[args[1].name].T}
                else:
                    kind, ins = "matmul", [data(args[0]), data(args[1])]
            case "relu" | "tanh" | "sigmoid":
                kind, ins = _SIMPLE[op], [data(args[0])]
            case "gelu":
                kind, ins = "gelu", [data(args[0])]
                attrs = {"approximate": fx.kwargs.get("approximate", arg(1, "none"))}
            case "softmax" | "_softmax" | "log_softmax" | "_log_softmax":
                kind = "softmax" if "log" not in op else "log_softmax"
                ins, attrs = [data(args[0])], {"axis": int(args[1])}
            case "conv2d" | "convolution":
                if op == "convolution" and (args[6] or len(args[3]) != 2):
                    raise unsupported(source, fx.name, op, "only non-transposed 2-D convolutions")
                w = const(args[1], "weight")
                if w.ndim != 4:
                    raise unsupported(source, fx.name, op, "only 2-D convolutions")
                kind, ins, params = "conv2d", [data(args[0])], {"weight": w}
                if arg(2) is not None:
                    params["bias"] = const(arg(2), "bias")
                stride, padding, dilation = (_pair(arg(i, d)) for i, d in ((3, 1), (4, 0), (5, 1)))
                if isinstance(arg(4), str):
                    raise unsupported(source, fx.name, op, f"padding={arg(4)!r}")
                groups = arg(8, 1) if op == "convolution" else arg(6, 1)
                attrs = {"stride": stride, "dilation": dilation, "groups": int(groups),
                         "pads": (padding[0], padding[1], padding[0], padding[1])}
            case "max_pool2d" | "max_pool2d_with_indices" | "avg_pool2d":
                k = _pair(args[1])
                stride = _pair(arg(2) or k)
                p = _pair(arg(3, 0))
                kind, ins = ("max_pool2d" if op.startswith("max") else "avg_pool2d"), [data(args[0])]
                attrs = {"kernel": k, "stride": stride, "pads": (p[0], p[1], p[0], p[1])}
                if kind == "max_pool2d":
                    attrs |= {"dilation": _pair(arg(4, 1)), "ceil_mode": bool(arg(5, False))}
                else:
                    if arg(6) is not None:
                        raise unsupported(source, fx.name, op, "divisor_override")
                    attrs |= {"ceil_mode": bool(arg(4, False)), "count_include_pad": bool(arg(5, True))}
                if op == "max_pool2d_with_indices":
                    tuples[fx.name] = fx.name
            case "adaptive_avg_pool2d":
                if _pair(args[1]) != (1, 1):
                    raise unsupported(source, fx.name, op, f"output size {args[1]} (only 1x1)")
                kind, ins, attrs = "global_avg_pool", [data(args[0])], {"keepdim": True}
            case "mean":
                dims = sorted(d % 4 for d in (args[1] if len(args) > 1 else []))
                if dims != [2, 3]:
                    raise unsupported(source, fx.name, op, "only the mean over H and W of NCHW")
                kind, ins = "global_avg_pool", [data(args[0])]
                attrs = {"keepdim": bool(arg(2, False))}
            case "batch_norm" | "_native_batch_norm_legit_no_training":
                if op == "batch_norm" and args[5]:
                    raise unsupported(source, fx.name, op, "batch norm in training mode")
                kind, ins = "batch_norm", [data(args[0])]
                params = {"weight": const(args[1], "weight"), "bias": const(args[2], "bias"),
                          "mean": const(args[3], "running mean"), "var": const(args[4], "running var")}
                attrs = {"eps": float(args[7] if op == "batch_norm" else args[6])}
                if op != "batch_norm":
                    tuples[fx.name] = fx.name
            case "add" | "mul":
                a, b = args[0], args[1]
                if op == "add" and arg(2, 1) != 1:
                    raise unsupported(source, fx.name, op, "alpha other than 1")
                kind = op
                if isinstance(a, torch.fx.Node) and isinstance(b, torch.fx.Node) and \
                        not is_const(a) and not is_const(b):
                    ins = [data(a), data(b)]
                else:
                    x, c = (a, b) if isinstance(a, torch.fx.Node) and not is_const(a) else (b, a)
                    ins = [data(x)]
                    params = {"other": consts[c.name] if is_const(c) else np.float32(c)}
            case "flatten":
                kind, ins = "flatten", [data(args[0])]
                attrs = {"start_dim": int(arg(1, 0)), "end_dim": int(arg(2, -1))}
            case "view" | "reshape" | "_unsafe_view":
                shape = [int(s) if isinstance(s, int) else -1 for s in args[1]]
                kind, ins, attrs = "reshape", [data(args[0])], {"shape": tuple(shape)}
            case _:
                raise unsupported(source, fx.name, op)
        nodes.append(Node(fx.name, kind, ins, attrs, params))
        value[fx.name] = fx.name
    if output is None:
        raise DataError(f"{source}: the program has no output")
    return Network(nodes, output, input_shape, source, "torch.export")


_ARG_NAMES = {2: "bias"}  # keyword spellings of positional arguments the walker reads


def _pair(v) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = list(v)
    return (int(v[0]), int(v[0])) if len(v) == 1 else (int(v[0]), int(v[1]))
