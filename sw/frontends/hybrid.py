"""A user's network on EIE: its EIE segments as packed images, its host segments in PyTorch.

:func:`compile_network` turns each EIE segment of a :class:`~sw.frontends.ir.Network` into
quantized layers (the network's own codebooks when its weights already take at most
``2**weight_bits - 1`` non-zero values, as a compressed ``model.eie``'s do; otherwise a one-shot
k-means to ``weight_bits``, no pruning, reported) and a :class:`~sw.eie.pack.NetworkImage` with
per-layer activation formats chosen from calibration inputs (docs/format.md "Activation
formats"). :meth:`HybridModel.run` executes the network with every EIE segment handed to a
runner: the golden model here (:meth:`HybridModel.golden_runner`), the RTL in ``sim.hybrid``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sw.compression.data import Dataset, load_inputs
from sw.compression.quantize import quantize_weights
from sw.eie.config import EIEConfig
from sw.eie.formats import choose_formats
from sw.eie.golden import float_network, run_network_batch
from sw.eie.pack import NetworkImage, pack_network
from sw.errors import DataError, FitError
from sw.frontends.ir import FCLayer, Network
from sw.qlayer import QuantizedLayer

FORMATS = ("auto", "fixed")  # per-layer formats from calibration data, or act_frac everywhere


@dataclass
class EIESegment:
    """One EIE segment: its quantized FC layers and their images."""

    index: int  # among the EIE segments (what a segment runner is called with)
    layers: list[QuantizedLayer]
    image: NetworkImage
    requantized: list[str]  # layers whose float weights were k-means quantized here

    @property
    def n_in(self) -> int:
        return self.layers[0].n_in

    @property
    def n_out(self) -> int:
        return self.layers[-1].n_out


@dataclass
class HybridModel:
    original: Network  # the network as given
    network: Network  # the same with the EIE layers' weights as quantized for the hardware
    segments: list[EIESegment]
    config: EIEConfig
    formats: str
    saturation: dict[str, int] = field(default_factory=dict)  # layer -> saturated outputs

    def run(self, x: np.ndarray, runner: Callable[[int, np.ndarray], np.ndarray] | None
            ) -> np.ndarray:
        """The network on a batch ``x`` with each EIE segment handed to ``runner(index, a)``
        (float (B, n_in) -> float (B, n_out)); ``runner=None``: float everywhere."""
        return self.network.run_hybrid(x, runner)

    def run_float(self, x: np.ndarray) -> np.ndarray:
        """The network as given, in float."""
        return self.original.run_float(x)

    @property
    def requantized(self) -> bool:
        """Whether k-means approximated any of the given weights (then :meth:`run_quantized`
        differs from :meth:`run_float`)."""
        return any(seg.requantized for seg in self.segments)

    def run_quantized(self, x: np.ndarray) -> np.ndarray:
        """In float with the EIE layers' weights as the hardware holds them."""
        return self.network.run_float(x)

    def float_outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """``float`` (as given) and, if the weights were quantized here, ``float-q``."""
        out = {"float": self.run_float(x)}
        if self.requantized:
            out["float-q"] = self.run_quantized(x)
        return out

    def run_golden(self, x: np.ndarray, record: dict[int, list[np.ndarray]] | None = None
                   ) -> np.ndarray:
        """The network with every EIE segment through the golden model (bit-exact with the
        RTL); counts saturated outputs per layer into :attr:`saturation`. ``record`` receives,
        per EIE segment, the integer inputs it was given."""
        return self.run(x, self.golden_runner(record))

    def golden_runner(self, record: dict[int, list[np.ndarray]] | None = None
                      ) -> Callable[[int, np.ndarray], np.ndarray]:
        def run(index: int, a: np.ndarray) -> np.ndarray:
            seg = self.segments[index]
            xq = seg.image.quantize_input(a)
            if record is not None:
                record.setdefault(index, []).append(xq)
            sat: list[int] = []
            y = run_network_batch(seg.image, xq, sat)[-1]
            for q, n in zip(seg.layers, sat, strict=True):
                self.saturation[q.name] = self.saturation.get(q.name, 0) + n
            return seg.image.dequantize_output(y).astype(np.float32)
        return run

    def describe(self) -> list[str]:
        """The split, one line per node (segment, where, op, name, why), then per EIE segment
        its layers, formats and images."""
        lines = [f"{'seg':>3}  {'where':5} {'op':15} {'node':24} why"]
        for s in self.network.segments:
            for n in s.nodes:
                lines.append(f"{s.index:>3}  {s.kind:5} {n.op:15} {n.name:24} {n.reason}")
        for seg in self.segments:
            fmts = [seg.image.input_frac] + [d.out_frac for d in seg.image.layers]
            lines.append(f"EIE segment {seg.index}: {' -> '.join(q.name for q in seg.layers)}, "
                         f"{seg.n_in} -> {seg.n_out}, activation fraction bits "
                         f"{'/'.join(map(str, fmts))} ({self.formats})"
                         + (f"; one-shot {self.config.weight_bits}-bit k-means (no pruning) of "
                            f"{', '.join(seg.requantized)}: run `eie compress` first for Deep "
                            f"Compression" if seg.requantized else ""))
        trained, bits = self.original.act_bits, self.config.act_bits
        if trained is not None and trained != bits:
            lines.append(f"note: the network was trained for {trained}-bit activations (eie "
                         f"compress --act-bits {trained}); config {self.config.name} computes "
                         f"with {bits}-bit ones, so the results are that hardware's, not what was "
                         f"trained (a configuration with act_bits {trained} runs what was trained)")
        return lines

    def manifest(self) -> dict:
        """The split as recorded beside the images."""
        return {
            "segments": [{"index": s.index, "kind": s.kind, "nodes": [
                {"name": n.name, "op": n.op, "placement": n.placement, "reason": n.reason}
                for n in s.nodes]} for s in self.network.segments],
            "eie_segments": [{"index": seg.index, "layers": [q.name for q in seg.layers],
                              "formats": [seg.image.input_frac]
                              + [d.out_frac for d in seg.image.layers],
                              "requantized": seg.requantized} for seg in self.segments],
            "formats": self.formats,
        }


def quantized_layer(fc: FCLayer, bits: int) -> tuple[QuantizedLayer, bool]:
    """An FC layer as the packer takes it, and whether k-means had to approximate its weights
    (False when it already holds at most ``2**bits - 1`` distinct non-zero values)."""
    w = np.asarray(fc.weight, np.float32)
    distinct = np.unique(w[w != 0])
    lq = quantize_weights(w, bits, name=fc.name)
    approx = distinct.size > (1 << bits) - 1
    return QuantizedLayer(fc.name, "linear", lq.codebook, lq.indices, fc.bias, bits,
                          relu=fc.relu), approx


def compile_network(network: Network, config: EIEConfig, calib: np.ndarray | None = None,
                    formats: str = "auto", balance: bool = False) -> HybridModel:
    """Quantize and pack every EIE segment of ``network`` for ``config``. ``formats="auto"``
    chooses each layer's activation format from the float activations of ``calib`` (a batch
    of network inputs; required then), ``"fixed"`` keeps ``act_frac`` everywhere."""
    if formats not in FORMATS:
        raise DataError(f"unknown activation formats {formats!r} (choose from {', '.join(FORMATS)})")
    eie = network.eie_layers()
    if not eie:
        raise FitError(f"{network.source or 'network'}: no FC layer runs on the EIE (every node "
                       f"is on the host)")
    quantized, approx = [], []
    for seg in eie:
        pairs = [quantized_layer(fc, config.weight_bits) for fc in seg]
        quantized.append([q for q, _ in pairs])
        approx.append([q.name for q, a in pairs if a])
    net_q = network.with_eie_layers([[FCLayer(q.name, q.dense(), q.bias, q.relu) for q in seg]
                                     for seg in quantized])
    seg_inputs: dict[int, np.ndarray] = {}
    if formats == "auto":
        if calib is None or len(calib) == 0:
            raise DataError("per-layer activation formats need calibration inputs "
                            "(or use fixed formats)")

        def capture(index: int, a: np.ndarray) -> np.ndarray:
            seg_inputs[index] = a
            return float_network(quantized[index], a)[-1].astype(np.float32)

        net_q.run_hybrid(calib, capture)
    segments = []
    for i, layers in enumerate(quantized):
        fmts = choose_formats(layers, seg_inputs[i], config) if formats == "auto" else None
        try:
            image = pack_network(layers, config, balance=balance, formats=fmts)
        except FitError as e:
            raise FitError(f"EIE segment {i} ({' -> '.join(q.name for q in layers)}) does not fit "
                           f"config {config.name!r}: {e}") from None
        segments.append(EIESegment(i, layers, image, approx[i]))
    return HybridModel(network, net_q, segments, config, formats)


@dataclass
class Inputs:
    """A batch to run a network on, shaped for it, with targets when the file had them."""

    x: np.ndarray
    data: Dataset | None
    calib: np.ndarray  # what the activation formats are chosen from
    calib_source: str


def load_inputs_for(network: Network, path: str, limit: int | None = None,
                    calib_limit: int = 1000) -> Inputs:
    """The inputs of ``path`` (:func:`sw.compression.data.load_inputs`) shaped for ``network``
    (examples with the same number of values are reshaped; anything else is refused, naming
    both shapes), the first ``limit`` of them. Activation formats are calibrated on the file's
    training inputs when it has them, else on the inputs themselves."""
    x, data = load_inputs(path)
    shape = network.input_shape
    if shape is None:
        first = network.segments[0]
        if first.kind == "eie":
            shape = (first.fc_layers()[0].weight.shape[1],)
    if shape is not None:
        ds = Dataset(x, data.y_test if data else np.zeros(len(x)), data.task if data else
                     "regression", data.x_train if data else None,
                     data.y_train if data else None, str(path)).for_input(tuple(shape))
        x = ds.x_test
        if data is not None:
            data = ds
    if limit is not None:
        if limit < 1:
            raise DataError(f"--limit must be >= 1, got {limit}")
        x = x[:limit]
    if data is not None and data.x_train is not None:
        calib = data.x_train[:calib_limit]
        return Inputs(x, data, calib, f"{len(calib)} training inputs")
    return Inputs(x, data, x[:calib_limit], "the inputs themselves (no training inputs given)")

