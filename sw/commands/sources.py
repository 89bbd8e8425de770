"""What `eie pack`, `eie rom` and friends take as a model, for the hardware: a model file, the
AlexNet recipe on a torchvision checkpoint, or EIE's benchmark layers, compiled per EIE segment.

A library of the command modules (above both halves: it joins the model frontends, the
compression pipeline's AlexNet recipe and the EIE packer), not a command.
"""

from __future__ import annotations

from pathlib import Path

from sw.compression.compress import compress_alexnet_fc
from sw.compression.models import TORCHVISION_ALEXNET_KEYS, load_checkpoint
from sw.eie import benchlayers
from sw.eie.config import EIEConfig
from sw.errors import DataError
from sw.frontends.chains import network_from_layers
from sw.frontends.hybrid import HybridModel, compile_network, load_inputs_for
from sw.frontends.ir import Network
from sw.frontends.load import detect_format, load_network


def load_for_hardware(model: str | Path | None = None, bench: str | None = None, seed: int = 0,
                      act: str = "relu") -> tuple[Network, dict]:
    """What `eie pack` and `eie rom` put on the EIE, as a network, and where it came from (the
    images' ``meta``): a model file :func:`load_network` reads; a torchvision-format AlexNet
    state_dict (``classifier.1/4/6``: Deep Compression's AlexNet recipe,
    :func:`sw.compression.compress.compress_alexnet_fc`); or ``bench``, one of EIE's Table III
    layers or ``alexnet`` (fc6 -> fc7 -> fc8), synthesized from ``seed``."""
    if (model is None) == (bench is None):
        raise DataError("give exactly one input: a MODEL file or --bench NAME")
    if bench is not None:
        layers = benchlayers.alexnet_chain(seed)[0] if bench.lower() == "alexnet" else \
            [benchlayers.bench_layer(bench, seed)]
        return network_from_layers(layers, None, f"bench:{bench}", "bench"), \
            {"source": f"bench:{bench}", "seed": seed}
    path = Path(model)
    if detect_format(path) == "state_dict" and _is_torchvision_alexnet(path):
        result, _ = compress_alexnet_fc(path)
        return network_from_layers(result.layers, None, str(path), "state_dict"), \
            {"source": str(path), "model": "alexnet-fc",
             "density": {q.name: q.nnz / q.indices.size for q in result.layers}}
    network = load_network(path, act)
    return network, {"source": str(path), "format": network.format}


def _is_torchvision_alexnet(path: Path) -> bool:
    sd = load_checkpoint(path)
    return all(f"{k}.weight" in sd for k in TORCHVISION_ALEXNET_KEYS.values())


def compile_for_hardware(config: EIEConfig, model: str | None = None, bench: str | None = None,
                         seed: int = 0, act: str = "relu", calib: str | None = None,
                         balance: bool = False) -> tuple[HybridModel, dict]:
    """What `eie pack` and `eie rom` build: the network of ``model`` (a file) or ``bench``
    (:func:`load_for_hardware`) compiled for ``config``, with per-layer
    activation formats from the ``calib`` inputs file when given (else ``act_frac``), and the
    images' meta (where it came from, the host/EIE split)."""
    network, meta = load_for_hardware(model, bench, seed, act)
    x = None if calib is None else load_inputs_for(network, calib).calib
    compiled = compile_network(network, config, x, "fixed" if x is None else "auto", balance)
    return compiled, {**meta, "balance": bool(balance), "network": compiled.manifest()}
