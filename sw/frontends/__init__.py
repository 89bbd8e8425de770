"""Model files users bring -> a network IR split into EIE segments and host segments.

:func:`load_network` reads ONNX, torch.export programs, TorchScript Sequentials, bare
state_dicts of Linear layers and the project's ``model.eie`` (recognised by content);
:class:`Network` runs it in float (:meth:`Network.run_float`) or with each EIE segment handed
to a runner (:meth:`Network.run_hybrid`), and gives the EIE segments' FC layers to the
compression pipeline and packer (:meth:`Network.eie_layers`, :meth:`Network.with_eie_layers`).
Pure software: imports neither hw nor sim.
"""

from sw.frontends.ir import FCLayer, Network, Node, Segment, SegmentRunner
from sw.frontends.load import detect_format, load_network

__all__ = ["FCLayer", "Network", "Node", "Segment", "SegmentRunner", "detect_format", "load_network"]
