"""A :class:`~sw.frontends.ir.Network` as an ``nn.Module``, so that the compression pipeline
(:func:`sw.compression.compress.compress_module`) prunes, quantizes and retrains its FC layers
exactly as it does the built-in networks.

Every ``linear`` node (all of them go to EIE) becomes a real ``nn.Linear`` holding a copy of
the node's weight and bias; :meth:`NetworkModule.named_weight_layers` names them after the
nodes, and :meth:`NetworkModule.layer_meta` gives each its ReLU flag. The host nodes'
parameters are registered as buffers: frozen, so retraining adapts the FC layers to the host
part as the user trained it, and the host part stored in the model file is the user's own,
bit for bit. ``forward`` runs :func:`~sw.frontends.ir.run_node` for every other node, the
one definition of what each op means, so the module computes what ``Network.run_float`` does.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sw.frontends.ir import INPUT, FCLayer, Network, run_node


class NetworkModule(nn.Module):
    def __init__(self, net: Network) -> None:
        super().__init__()
        self.network = net
        self.fc = nn.ModuleDict()  # node index key -> nn.Linear
        self.host = nn.ModuleDict()  # node index key -> a module holding its params as buffers
        relu = {fc.name: fc.relu for seg in net.eie_layers() for fc in seg}
        self._relu = relu
        for i, n in enumerate(net.nodes):
            key = f"n{i}"
            if n.op == "linear":
                w = n.params["weight"]
                layer = nn.Linear(w.shape[1], w.shape[0], bias="bias" in n.params)
                with torch.no_grad():
                    layer.weight.copy_(torch.from_numpy(w))
                    if layer.bias is not None:
                        layer.bias.copy_(torch.from_numpy(n.params["bias"]))
                self.fc[key] = layer
            elif n.params:
                holder = nn.Module()
                for k, v in n.params.items():
                    holder.register_buffer(k, torch.from_numpy(np.array(v, np.float32)))
                self.host[key] = holder

    def named_weight_layers(self) -> list[tuple[str, nn.Linear]]:
        """(node name, nn.Linear) of every FC node, in network order."""
        return [(n.name, self.fc[f"n{i}"]) for i, n in enumerate(self.network.nodes)
                if n.op == "linear"]

    def layer_meta(self, name: str) -> dict:
        """What the model file records per layer: whether EIE applies ReLU after it."""
        return {"relu": self._relu[name]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env = {INPUT: x}
        for i, n in enumerate(self.network.nodes):
            key = f"n{i}"
            xs = [env[v] for v in n.inputs]
            if n.op == "linear":
                env[n.name] = self.fc[key](xs[0])
            else:
                params = dict(self.host[key].named_buffers()) if key in self.host else {}
                env[n.name] = run_node(n, xs, params)
        return env[self.network.output]

    def to_network(self) -> Network:
        """The network with this module's current FC weights and biases."""
        layers = dict(self.named_weight_layers())

        def current(_seg: int, fc: FCLayer) -> FCLayer:
            m = layers[fc.name]
            b = None if m.bias is None else m.bias.detach().numpy().copy()
            return fc._replace(weight=m.weight.detach().numpy().copy(), bias=b)

        return self.network.with_eie_layers(current)
