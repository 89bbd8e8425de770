"""The whole network in the project's ``model.eie``: graph and host part in the file's metadata.

``model.eie`` holds the EIE segments' FC layers as quantized layers (codebook + Huffman-coded
indices, each with its ReLU flag). A network compressed from a user's file has more: host
nodes (convolutions, Tanh, softmax, ...) and the order in which everything runs. Those go into
the file's metadata under ``meta["network"]`` (:func:`network_meta`), a JSON object::

    {"version": 1, "output": <value name>, "input_shape": [..] | null, "format": <source format>,
     "source": <file name>,
     "nodes": [{"name", "op", "inputs": [..], "attrs": {..}, "placement": "eie" | "host",
                "params": {<param>: {"shape": [..], "float32": <base64 of little-endian float32>}}},
               ...]}

A ``linear`` node stores no params: its weight and bias are the quantized layer of the same
name (weight ``codebook[indices]``). Host nodes store their float32 parameters exactly. The
metadata block is zlib-compressed with the rest of the file's JSON (docs/format.md).
:func:`network_from_meta` rebuilds the :class:`~sw.frontends.ir.Network`; every
inconsistency (a node without its layer, a layer without its node, a ReLU flag or placement
that disagrees with the graph) is a one-line :class:`~sw.errors.DataError`.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

from sw.errors import DataError
from sw.frontends.ir import Network, Node
from sw.qlayer import QuantizedLayer

KEY = "network"
VERSION = 1


def network_meta(net: Network) -> dict:
    """``net``'s graph and host parameters as the JSON object stored in ``meta["network"]``."""
    nodes = []
    for n in net.nodes:
        entry = {"name": n.name, "op": n.op, "inputs": list(n.inputs), "attrs": _to_json(n.attrs),
                 "placement": n.placement}
        if n.op != "linear":
            entry["params"] = {k: {"shape": list(v.shape),
                                   "float32": base64.b64encode(v.astype("<f4").tobytes()).decode()}
                               for k, v in n.params.items()}
        nodes.append(entry)
    return {"version": VERSION, "output": net.output,
            "input_shape": None if net.input_shape is None else list(net.input_shape),
            "format": net.format, "source": Path(net.source).name if net.source else "",
            "nodes": nodes}


def host_parameter_count(net: Network) -> int:
    """Float parameters the host part keeps (every node that is not an FC layer)."""
    return sum(v.size for n in net.nodes if n.op != "linear" for v in n.params.values())


def network_from_meta(d: dict, layers: list[QuantizedLayer], source: str = "") -> Network:
    """The network ``meta["network"]`` and the file's quantized ``layers`` stand for."""
    where = f"{source or 'model file'}: network metadata"
    try:
        if d.get("version") != VERSION:
            raise DataError(f"{where}: unsupported version {d.get('version')!r} (reads {VERSION})")
        by_name = {q.name: q for q in layers}
        used = set()
        nodes = []
        for e in d["nodes"]:
            name, op = str(e["name"]), str(e["op"])
            if op == "linear":
                q = by_name.get(name)
                if q is None or q.kind != "linear":
                    raise DataError(f"{where}: FC node {name!r} has no linear layer in the file")
                used.add(name)
                params = {"weight": q.dense()} | ({} if q.bias is None else {"bias": q.bias})
            else:
                params = {k: _decode(p, f"{where}: node {name!r} param {k!r}")
                          for k, p in (e.get("params") or {}).items()}
            nodes.append(Node(name, op, [str(i) for i in e["inputs"]], _from_json(e["attrs"]),
                              params))
        extra = sorted(set(by_name) - used)
        if extra:
            raise DataError(f"{where}: layer(s) {', '.join(extra)} belong to no node")
        shape = d.get("input_shape")
        net = Network(nodes, str(d["output"]), None if shape is None else tuple(int(s) for s in shape),
                      source, "eie")
    except DataError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise DataError(f"{where} is corrupt ({type(e).__name__}: {e})") from None
    for n, e in zip(net.nodes, d["nodes"], strict=True):
        if e.get("placement") not in (None, n.placement):
            raise DataError(f"{where}: node {n.name!r} was stored as {e['placement']}, the graph "
                            f"puts it on {n.placement}")
    for fc in (fc for seg in net.eie_layers() for fc in seg):
        if fc.relu != by_name[fc.name].relu:
            raise DataError(f"{where}: layer {fc.name}: the file's relu flag "
                            f"{by_name[fc.name].relu} disagrees with the graph ({fc.relu})")
    return net


def _decode(p: dict, what: str) -> np.ndarray:
    shape = tuple(int(s) for s in p["shape"])
    raw = base64.b64decode(p["float32"], validate=True)
    if len(raw) != 4 * int(np.prod(shape, dtype=np.int64)):
        raise DataError(f"{what}: {len(raw)} bytes for shape {shape}")
    return np.frombuffer(raw, "<f4").astype(np.float32).reshape(shape)


def _to_json(x):
    """Attributes as JSON values (tuples -> lists, NumPy scalars -> Python numbers)."""
    if isinstance(x, dict):
        return {str(k): _to_json(v) for k, v in x.items()}
    if isinstance(x, list | tuple | np.ndarray):
        return [_to_json(v) for v in x]
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    return x


def _from_json(x):
    """The inverse of :func:`_to_json` for the loaders' attributes (sequences are tuples)."""
    if isinstance(x, dict):
        return {k: _from_json(v) for k, v in x.items()}
    if isinstance(x, list):
        return tuple(_from_json(v) for v in x)
    return x
