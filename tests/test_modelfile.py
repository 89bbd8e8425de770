import json
import os
import struct
import tempfile
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sw.compression import modelfile
from sw.compression.modelfile import encode_layer, format_table, layer_table, load_model, save_model
from sw.errors import ConfigError, DataError
from sw.qlayer import QuantizedLayer


def _layer(name, shape, keep, bits=4, kind="linear", bias=True, seed=0, meta=None):
    rng = np.random.default_rng(seed)
    p = np.linspace(1.0, 0.1, (1 << bits) - 1)
    codes = rng.choice(np.arange(1, 1 << bits), size=shape, p=p / p.sum())
    codes = codes * (rng.random(shape) < keep)
    codebook = np.concatenate([[0], rng.normal(0, 0.1, (1 << bits) - 1)]).astype(np.float32)
    b = rng.normal(0, 0.1, shape[0]).astype(np.float32) if bias else None
    return QuantizedLayer(name, kind, codebook, codes, b, bits, meta or {})


def _assert_same(a: QuantizedLayer, b: QuantizedLayer) -> None:
    assert (a.name, a.kind, a.bits, a.shape, a.meta, a.relu) == (b.name, b.kind, b.bits, b.shape, b.meta, b.relu)
    assert a.codebook.dtype == b.codebook.dtype == np.float32
    assert a.codebook.tobytes() == b.codebook.tobytes()  # bit-identical
    assert np.array_equal(a.indices, b.indices)
    if a.bias is None:
        assert b.bias is None
    else:
        assert b.bias.dtype == np.float32 and a.bias.tobytes() == b.bias.tobytes()


@pytest.fixture
def lenet_like():
    return [
        _layer("conv1", (20, 1, 5, 5), 0.66, bits=8, kind="conv", seed=1,
               meta={"stride": 1, "padding": 0}),
        _layer("ip1", (300, 784), 0.08, seed=2, meta={"relu": True}),
        _layer("ip2", (100, 300), 0.09, seed=3, bias=False),
        _layer("ip3", (10, 100), 0.26, seed=4),
    ]


def test_file_round_trip_gives_identical_layers(tmp_path, lenet_like):
    path = tmp_path / "model.eiez"
    meta = {"arch": "lenet", "input_shape": [1, 28, 28]}
    n = save_model(path, lenet_like, meta)
    assert n == os.path.getsize(path)
    layers, meta_back = load_model(path)
    assert meta_back == meta
    assert len(layers) == len(lenet_like)
    for a, b in zip(lenet_like, layers, strict=True):
        _assert_same(a, b)
        assert np.array_equal(a.dense(), b.dense())
    assert [q.relu for q in layers] == [False, True, False, False]  # stored per layer


def _with_layer_meta(blob: bytes, layer_meta: list[dict]) -> bytes:
    """The same model file with other per-layer metadata (as an older writer would store it)."""
    from sw.compression import modelfile

    r = modelfile._Reader(blob[modelfile._HEADER.size:])
    info = json.loads(zlib.decompress(r.take(r.varint())))
    for entry, m in zip(info["layers"], layer_meta, strict=True):
        entry["meta"] = m
    z = zlib.compress(json.dumps(info).encode())
    payload = modelfile._varint(len(z)) + z + r.data[r.pos:]
    return modelfile._HEADER.pack(modelfile.MAGIC, modelfile.VERSION, len(payload),
                                  zlib.crc32(payload)) + payload


def test_relu_is_a_field_stored_as_layer_metadata_and_old_files_without_it_load(tmp_path):
    layers = [_layer("a", (6, 5), 0.5, seed=1), _layer("b", (4, 6), 0.5, seed=2),
              _layer("c", (3, 4), 0.5, seed=3)]
    layers[1].relu = True
    path = tmp_path / "m.eie"
    save_model(path, layers)
    back, _ = load_model(path)
    assert [q.relu for q in back] == [False, True, False]
    assert all("relu" not in q.meta for q in back)  # a field, not metadata, once loaded
    # a file from before the flag was stored: a classifier chain, ReLU after all but the last
    old = tmp_path / "old.eie"
    old.write_bytes(_with_layer_meta(path.read_bytes(), [{}, {}, {}]))
    assert [q.relu for q in load_model(old)[0]] == [True, True, False]
    # metadata that says relu (how compress has always written it) sets the field
    old.write_bytes(_with_layer_meta(path.read_bytes(), [{"relu": False}, {"relu": True}, {}]))
    assert [q.relu for q in load_model(old)[0]] == [False, True, False]



def test_table_compressed_bytes_equal_the_file_size(tmp_path, lenet_like):
    meta = {"arch": "lenet"}
    n = save_model(tmp_path / "m.eiez", lenet_like, meta, index_bits={"ip1": 5})
    table = layer_table(lenet_like, index_bits={"ip1": 5}, meta=meta)
    assert table["compressed_bytes"] == n == os.path.getsize(tmp_path / "m.eiez")
    assert sum(r["bytes"] for r in table["layers"]) + table["overhead_bytes"] == n
    assert table["original_bytes"] == 4 * sum(
        x.indices.size + (0 if x.bias is None else x.bias.size) for x in lenet_like)
    assert table["ratio"] == pytest.approx(table["original_bytes"] / n)
    rows = {r["name"]: r for r in table["layers"]}
    assert rows["ip1"]["index_bits_pq"] == 5
    for layer in lenet_like:
        r = rows[layer.name]
        assert r["weights"] == layer.indices.size and r["nonzeros"] == layer.nnz
        assert r["weight_bits_pq"] == layer.bits
        assert 0 < r["weight_bits_pqh"] <= layer.bits + 1
        assert r["kept_pct"] == pytest.approx(100 * layer.nnz / layer.indices.size)
    ip1 = rows["ip1"]  # Huffman saves on both streams of a skewed, sparse layer
    assert ip1["weight_bits_pqh"] < ip1["weight_bits_pq"]
    assert ip1["size_pct_pqh"] < ip1["size_pct_pq"]
    json.dumps(table)  # goes into report.json as is
    text = format_table(table)
    assert "ip1" in text and "total" in text and f"{n:,} bytes" in text


def test_all_zero_layer_and_layer_without_bias_round_trip(tmp_path):
    zero = QuantizedLayer("dead", "linear", np.arange(16, dtype=np.float32) / 16,
                          np.zeros((7, 9), int), None, 4)
    path = tmp_path / "z.eiez"
    save_model(path, [zero])
    (back,), _ = load_model(path)
    _assert_same(zero, back)
    assert layer_table([zero])["layers"][0]["entries"] == 0


def test_gaps_longer_than_the_index_span_get_padding_entries(tmp_path):
    codes = np.zeros((64, 3), int)
    codes[0, 0], codes[63, 0], codes[40, 2] = 3, 5, 1  # gaps of 62 and 40+ rows
    layer = QuantizedLayer("gap", "linear", np.linspace(0, 1, 16, dtype=np.float32), codes,
                           None, 4)
    enc = encode_layer(layer, index_bits=2)  # max_gap 3: many padding entries
    assert enc.n_entries > enc.nnz == 3
    save_model(tmp_path / "g.eiez", [layer], index_bits=2)
    (back,), _ = load_model(tmp_path / "g.eiez")
    _assert_same(layer, back)
    row = layer_table([layer], index_bits=2)["layers"][0]
    assert row["padding"] == enc.n_entries - 3 and row["index_bits_pq"] == 2


def test_auto_index_width_gives_the_smallest_record():
    layer = _layer("ip1", (300, 784), 0.08, seed=5)
    auto = encode_layer(layer)
    fixed = [len(encode_layer(layer, ib).record) for ib in range(2, 9)]
    assert len(auto.record) == min(fixed)
    assert 2 <= auto.index_bits <= 8


@pytest.mark.parametrize("transpose, order", [(False, "col"), (True, "row")])
def test_order_follows_the_sparsity_structure(tmp_path, transpose, order):
    # dead inputs (like MNIST's border pixels): only the first 20 of 200 columns are used, so
    # column-major order has short gaps only, row-major order a long gap in every row
    rng = np.random.default_rng(0)
    codes = np.zeros((100, 200), int)
    codes[:, :20] = rng.integers(1, 16, (100, 20)) * (rng.random((100, 20)) < 0.5)
    codes = codes.T.copy() if transpose else codes
    layer = QuantizedLayer("s", "linear", np.linspace(0, 1, 16, dtype=np.float32), codes, None, 4)
    assert encode_layer(layer).order == order
    save_model(tmp_path / "s.eiez", [layer])
    _assert_same(layer, load_model(tmp_path / "s.eiez")[0][0])


def test_wide_codes_round_trip(tmp_path):
    layer = _layer("wide", (30, 40), 0.3, bits=10, seed=6)  # uint16 codes
    save_model(tmp_path / "w.eiez", [layer])
    _assert_same(layer, load_model(tmp_path / "w.eiez")[0][0])


@pytest.fixture
def model_file(tmp_path, lenet_like):
    path = tmp_path / "m.eiez"
    save_model(path, lenet_like[1:3], {"arch": "x"})
    return path


def test_bad_magic_raises_data_error(tmp_path):
    path = tmp_path / "not.eiez"
    path.write_bytes(b"PK\x03\x04 this is a zip file")
    with pytest.raises(DataError, match="not an eie compressed model \\(bad magic\\)"):
        load_model(path)


def test_truncated_file_raises_data_error(model_file):
    blob = model_file.read_bytes()
    for cut in (len(blob) - 1, len(blob) // 2, 8):
        model_file.write_bytes(blob[:cut])
        with pytest.raises(DataError, match="truncated"):
            load_model(model_file)


def test_corrupt_file_raises_checksum_mismatch(model_file):
    blob = bytearray(model_file.read_bytes())
    blob[len(blob) // 2] ^= 0x10
    model_file.write_bytes(bytes(blob))
    with pytest.raises(DataError, match="checksum mismatch"):
        load_model(model_file)


def test_unsupported_version_and_trailing_data_raise_data_error(model_file):
    blob = model_file.read_bytes()
    model_file.write_bytes(blob[:4] + bytes([99]) + blob[5:])
    with pytest.raises(DataError, match="unsupported .* version 99"):
        load_model(model_file)
    model_file.write_bytes(blob + b"\0")
    with pytest.raises(DataError, match="trailing data"):
        load_model(model_file)


def test_well_formed_but_inconsistent_payload_raises_data_error(tmp_path):
    payload = b"\x05" + zlib.compress(b"{}")[:5]  # valid header and checksum, garbage inside
    path = tmp_path / "bad.eiez"
    path.write_bytes(struct.pack("<4sBII", b"EIEZ", 1, len(payload), zlib.crc32(payload)) + payload)
    with pytest.raises(DataError, match="corrupt model file"):
        load_model(path)


def test_missing_file_raises_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        load_model(tmp_path / "nope.eiez")


def test_bad_index_bits_and_meta_are_rejected(tmp_path, lenet_like):
    with pytest.raises(ConfigError, match="index bits must be in 1..8"):
        save_model(tmp_path / "x.eiez", lenet_like, index_bits=9)
    with pytest.raises(ConfigError, match="unknown layer\\(s\\): ip9"):
        save_model(tmp_path / "x.eiez", lenet_like, index_bits={"ip9": 4})
    with pytest.raises(DataError, match="JSON"):
        save_model(tmp_path / "x.eiez", lenet_like, {"f": object()})
    assert not (tmp_path / "x.eiez").exists()


def test_magic_and_version_constants():
    assert modelfile.MAGIC == b"EIEZ" and modelfile.VERSION == 1


@settings(max_examples=40, deadline=None)
@given(out=st.integers(1, 40), inp=st.integers(1, 60), density=st.floats(0, 1),
       bits=st.integers(1, 9), index_bits=st.sampled_from([None, 1, 2, 3, 8]),
       bias=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_round_trip_property(out, inp, density, bits, index_bits, bias, seed):
    rng = np.random.default_rng(seed)
    codes = rng.integers(1, 1 << bits, (out, inp)) * (rng.random((out, inp)) < density)
    codebook = np.concatenate([[0], rng.normal(0, 1, (1 << bits) - 1)]).astype(np.float32)
    b = rng.normal(0, 1, out).astype(np.float32) if bias else None
    layer = QuantizedLayer("l", "linear", codebook, codes, b, bits)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.eiez")
        n = save_model(path, [layer], index_bits=index_bits)
        assert n == os.path.getsize(path) == layer_table([layer], index_bits)["compressed_bytes"]
        (back,), meta = load_model(path)
    _assert_same(layer, back)
    assert meta == {}
