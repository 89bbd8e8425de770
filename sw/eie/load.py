"""The layers to put on the EIE, from what `eie pack` and `eie rom` take: a compressed model
file (from `eie compress`), a torchvision-format AlexNet state_dict (classifier.1/4/6: pruned to
Deep Compression's densities and 4-bit quantized without retraining), or one of EIE's Table III
layers (or `alexnet`, fc6 -> fc7 -> fc8) synthesized from a seed (:mod:`sw.eie.benchlayers`).
"""

from __future__ import annotations

from pathlib import Path

from sw.errors import DataError
from sw.qlayer import QuantizedLayer


def load_layers(model: str | Path | None = None, bench: str | None = None,
                seed: int = 0) -> tuple[list[QuantizedLayer], dict]:
    """The layers of ``model`` (a file) or of ``bench`` (a name, synthesized from ``seed``),
    each with its ReLU flag, and the images' ``meta`` (where they came from)."""
    if (model is None) == (bench is None):
        raise DataError("give exactly one input: a MODEL file or --bench NAME")
    if bench is not None:
        from sw.eie import benchlayers

        if bench.lower() == "alexnet":
            layers, _ = benchlayers.alexnet_chain(seed)
            return layers, {"source": "bench:alexnet", "seed": seed}
        return [benchlayers.bench_layer(bench, seed)], \
            {"source": f"bench:{bench}", "seed": seed}
    path = Path(model)
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if head == b"EIEZ":  # a compressed model file
        from sw.compression.modelfile import load_model

        layers, meta = load_model(path)
        return layers, {"source": str(path), "model_meta": meta}
    from sw.compression.compress import compress_alexnet_fc

    result, _ = compress_alexnet_fc(path)
    return result.layers, {"source": str(path), "model": "alexnet-fc",
                           "density": {q.name: q.nnz / q.indices.size for q in result.layers}}
