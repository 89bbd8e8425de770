"""The golden model: EIE's fixed-point arithmetic on the images, bit-exact.

The rules are docs/format.md, "Arithmetic" and "Activation formats" (per layer: the input's
``in_frac``, the codebook's ``w_frac``, the output's ``out_frac`` and the layer table's
``shift = w_frac + in_frac - out_frac``); the integer operations themselves live in
:mod:`sw.eie.fixedpoint`, which the packer shares. The RTL mirrors them bit for bit.

The golden model computes FROM THE IMAGES: :func:`layer_matrix` decodes pointers and
sparse-matrix words (:func:`sw.eie.pack.decode_layer`) and looks codes up in the integer codebook;
it never sees the dense weights. Products are accumulated exactly in int64 by a scipy.sparse
product (int64 arithmetic wraps modulo 2**64, a multiple of 2**acc_bits, so wrapping to
``acc_bits`` afterwards is exact whatever the sum).

Tolerance against float (:func:`error_bound`, docs/format.md): without saturation or
wrap-around, one layer's output differs from the float result on the same (quantized) inputs
by at most the codebook rounding (half an LSB of ``w_frac`` per weight, times ``|a_j|``), the
bias rounding and the output rounding (half an LSB of ``out_frac`` each).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from sw.eie.config import EIEConfig
from sw.eie.fixedpoint import int_range, requantize, rounded, saturated
from sw.eie.pack import LayerEntries, NetworkImage, decode_layer
from sw.errors import DataError
from sw.qlayer import QuantizedLayer

# -- one layer ---------------------------------------------------------------------------------


def layer_triplets(image: NetworkImage, layer_index: int, columns: np.ndarray | None = None,
                   entries: LayerEntries | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The layer's non-padding entries (of all columns, or of the ascending ``columns``)
    decoded from the pointer and sparse-matrix images, as ``(physical row, physical column,
    c_int[v])``. Padding entries (``c[0] = 0``) are left out. ``entries``: those columns'
    entries when the caller has already decoded them (:func:`sw.eie.pack.decode_layer`)."""
    e = decode_layer(image, layer_index, columns) if entries is None else entries
    real = e.v != 0
    rows = e.physical_row(image.config.n_pe)[real]
    return rows, e.col[real], image.codebook[layer_index][e.v[real]]


def layer_matrix(image: NetworkImage, layer_index: int) -> sp.csr_matrix:
    """The layer's integer weights ``c_int[v]`` (n_out x n_in, physical order), from the images."""
    d = image.layers[layer_index]
    rows, cols, vals = layer_triplets(image, layer_index)
    return sp.csr_matrix((vals, (rows, cols)), shape=(d.n_out, d.n_in), dtype=np.int64)


def _check_activations(a: np.ndarray, n: int, config: EIEConfig, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.shape[-1] != n:
        raise DataError(f"{what}: expected {n} activations, got {a.shape[-1]}")
    if not np.issubdtype(a.dtype, np.integer):
        raise DataError(f"{what}: activations must be integers (use quantize_input), got {a.dtype}")
    lo, hi = int_range(config.act_bits)
    if a.size and (a.min() < lo or a.max() > hi):
        raise DataError(f"{what}: activations outside the {config.act_bits}-bit range {lo}..{hi}")
    return a.astype(np.int64, copy=False)


def _bias_physical(image: NetworkImage, layer_index: int) -> np.ndarray:
    d = image.layers[layer_index]
    return image.bias[:, d.bias_base: d.bias_base + d.rows_per_pe].T.ravel()[: d.n_out]


def _accumulate(image: NetworkImage, layer_index: int, m: sp.spmatrix, a: np.ndarray) -> np.ndarray:
    """(B, n_in) physical -> the exact sums ``W a + (bias << shift)``, (B, n_out), before the
    wrap to ``acc_bits``."""
    acc = np.asarray(m @ a.T).T  # exact int64 (wraps mod 2**64 at worst, see module docstring)
    return acc + (_bias_physical(image, layer_index) << image.layers[layer_index].shift)


def _run(image: NetworkImage, layer_index: int, m: sp.csr_matrix, a: np.ndarray,
         saturation: list[int] | None = None) -> np.ndarray:
    """a: (B, n_in) physical -> (B, n_out) physical; appends the layer's count of saturated
    outputs to ``saturation`` if given."""
    d = image.layers[layer_index]
    acc = _accumulate(image, layer_index, m, a)
    if saturation is not None:
        saturation.append(saturated(rounded(acc, d.shift, image.config), image.config))
    return requantize(acc, d.shift, d.relu, image.config)


def run_layer(image: NetworkImage, layer_index: int, a_phys: np.ndarray) -> np.ndarray:
    """One layer on one input vector (physical order in and out), from the images. Only the
    columns with ``a_j != 0`` are read, as in the hardware."""
    d = image.layers[layer_index]
    a = _check_activations(a_phys, d.n_in, image.config, f"layer {d.name}")
    if a.ndim != 1:
        raise DataError(f"layer {d.name}: run_layer takes one vector; use run_layer_batch")
    return requantize(accumulators(image, layer_index, a), d.shift, d.relu, image.config)


def accumulators(image: NetworkImage, layer_index: int, a_phys: np.ndarray,
                 entries: LayerEntries | None = None) -> np.ndarray:
    """One layer's exact sums ``sum_j c_int[v_ij] a_j + (bias_i << shift)`` for one input vector
    (physical order), before the wrap to ``acc_bits``: what :func:`requantize` receives (for
    the coverage of wrap-around, saturation and ReLU). ``entries``: the entries of the columns
    of the non-zero inputs, if already decoded."""
    d = image.layers[layer_index]
    a = _check_activations(a_phys, d.n_in, image.config, f"layer {d.name}")
    if a.ndim != 1:
        raise DataError(f"layer {d.name}: accumulators takes one vector")
    rows, cols, vals = layer_triplets(image, layer_index, np.flatnonzero(a), entries)
    m = sp.coo_matrix((vals, (rows, cols)), shape=(d.n_out, d.n_in))
    return _accumulate(image, layer_index, m, a[None, :])[0]


def run_layer_batch(image: NetworkImage, layer_index: int, a_phys: np.ndarray) -> np.ndarray:
    """One layer on a batch ``(B, n_in)`` of physical input vectors."""
    d = image.layers[layer_index]
    a = _check_activations(a_phys, d.n_in, image.config, f"layer {d.name}")
    return _run(image, layer_index, layer_matrix(image, layer_index), np.atleast_2d(a))


def run_network_batch(image: NetworkImage, x_int: np.ndarray,
                      saturation: list[int] | None = None) -> list[np.ndarray]:
    """All layers on a batch ``(B, n_in)`` of integer inputs in logical order; returns every
    layer's outputs ``(B, n_out)`` in logical order. ``saturation``, if given, receives each
    layer's number of saturated outputs (over the batch)."""
    x = np.atleast_2d(_check_activations(x_int, image.layers[0].n_in, image.config, "network input"))
    a = image.input_to_physical(x)
    outs = []
    for li in range(len(image.layers)):
        a = _run(image, li, layer_matrix(image, li), a, saturation)
        outs.append(image.to_logical(li, a))
    return outs


def run_network(image: NetworkImage, x_int_logical: np.ndarray) -> list[np.ndarray]:
    """All layers on one integer input vector (logical order); each layer's outputs in logical
    order."""
    x = np.asarray(x_int_logical)
    if x.ndim != 1:
        raise DataError("run_network takes one input vector; use run_network_batch")
    a = image.input_to_physical(x)
    outs = []
    for li in range(len(image.layers)):
        a = run_layer(image, li, a)  # reads only the columns of non-zero inputs
        outs.append(image.to_logical(li, a))
    return outs


# -- float reference ---------------------------------------------------------------------------


def float_network(qlayers: list[QuantizedLayer], x: np.ndarray) -> list[np.ndarray]:
    """The float64 reference with the same quantized weights: ``y = W x + b``, ReLU where the
    layer says. ``x``: (n_in,) or (B, n_in); outputs per layer."""
    a = np.asarray(x, dtype=np.float64)
    outs = []
    for q in qlayers:
        r = q.relu
        w = sp.csr_matrix(q.dense().reshape(q.n_out, q.n_in).astype(np.float64))
        y = np.asarray(w @ a.T).T
        if q.bias is not None:
            y = y + q.bias.astype(np.float64)
        a = np.maximum(y, 0.0) if r else y
        outs.append(a)
    return outs


def error_bound(image: NetworkImage, layer_index: int, a_phys: np.ndarray,
                bias_float: np.ndarray | None) -> np.ndarray:
    """Per physical output row, the largest ``|fixed - float|`` of one layer (module docstring),
    for integer inputs ``a_phys`` (float reference evaluated on ``a_phys / 2**in_frac``,
    before ReLU -- ReLU only shrinks differences -- and assuming no saturation)."""
    c = image.config
    d = image.layers[layer_index]
    e = decode_layer(image, layer_index)
    real = e.v != 0
    dw = np.abs(d.codebook_int / 2.0 ** d.w_frac - d.codebook_float.astype(np.float64))
    err_w = sp.csr_matrix((dw[e.v[real]], (e.physical_row(c.n_pe)[real], e.col[real])),
                          shape=(d.n_out, d.n_in))
    a = np.abs(np.asarray(a_phys, dtype=np.float64)) / 2.0 ** d.in_frac
    bound = err_w @ a + 2.0 ** -(d.out_frac + 1)
    if bias_float is not None:
        b_phys = image.to_physical(layer_index, np.asarray(bias_float, dtype=np.float64))
        bound = bound + np.abs(_bias_physical(image, layer_index) / 2.0 ** d.out_frac - b_phys)
    return bound
