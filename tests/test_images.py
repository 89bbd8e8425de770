import json

import numpy as np
import pytest
from helpers_eie import chain, roomy

from sw.eie.images import bin_words, hex_lines, read_images, write_images
from sw.eie.pack import pack_network, unpack_network
from sw.errors import DataError


@pytest.fixture
def image():
    layers = chain(np.random.default_rng(0), [23, 17, 9], 0.3)
    return pack_network(layers, roomy(3), balance=True)


def test_write_read_round_trip_keeps_every_memory_and_the_layer_table(image, tmp_path):
    manifest = write_images(image, tmp_path / "img", meta={"source": "test"})
    back = read_images(tmp_path / "img")
    assert back.config == image.config
    for name in ("spmat", "ptr", "bias", "codebook"):
        assert np.array_equal(getattr(back, name), getattr(image, name)), name
    for a, b in zip(back.layers, image.layers, strict=True):
        assert (a.name, a.n_in, a.n_out, a.ptr_base, a.bias_base, a.w_frac, a.relu) == \
            (b.name, b.n_in, b.n_out, b.ptr_base, b.bias_base, b.w_frac, b.relu)
        assert np.array_equal(a.perm, b.perm) and np.array_equal(a.spmat_base, b.spmat_base)
        assert np.array_equal(a.codebook_float, b.codebook_float)
    for (c1, i1, b1), (c2, i2, b2) in zip(unpack_network(back), unpack_network(image), strict=True):
        assert np.array_equal(c1, c2) and np.array_equal(i1, i2) and np.array_equal(b1, b2)
    assert manifest["meta"] == {"source": "test"}
    on_disk = json.loads((tmp_path / "img" / "manifest.json").read_text())
    assert on_disk["memories"]["ptr"] == {"used": 18 + 24, "available": 1 << 14,
                                          "unit": "18-bit pointers per PE (both banks)"}
    assert len(on_disk["files"]) == 3 * 8 + 2


def test_hex_files_are_readmemh_words_of_the_memory_width(image, tmp_path):
    write_images(image, tmp_path / "img")
    pe1 = tmp_path / "img" / "pe01"
    spmat = (pe1 / "spmat.hex").read_text().splitlines()
    assert all(len(s) == 16 for s in spmat) and len(spmat) == image.words_used
    assert [int(s, 16) for s in spmat] == [int(w) for w in image.spmat[1]]
    even = (pe1 / "ptr_even.hex").read_text().splitlines()
    assert all(len(s) == 5 for s in even)  # 18-bit pointers: 5 hex digits
    assert [int(s, 16) for s in even] == image.ptr_bank(0)[1].tolist()
    bias = [int(s, 16) for s in (pe1 / "bias.hex").read_text().splitlines()]
    assert [b - (1 << 16) if b >= 1 << 15 else b for b in bias] == image.bias[1].tolist()
    raw = np.frombuffer((pe1 / "bias.bin").read_bytes(), "<i2")
    assert raw.tolist() == image.bias[1].tolist()
    assert np.frombuffer((pe1 / "spmat.bin").read_bytes(), "<u8").tolist() == image.spmat[1].tolist()


def test_hex_and_bin_encodings_of_negative_and_narrow_words():
    assert hex_lines(np.array([-1, 5, -32768]), 16) == b"ffff\n0005\n8000\n"
    assert hex_lines(np.array([0x3FFFF, 1]), 18) == b"3ffff\n00001\n"
    assert bin_words(np.array([-2, 3]), 12) == bytes([0xFE, 0x0F, 0x03, 0x00])
    assert hex_lines(np.array([2**64 - 1], np.uint64), 64) == b"ffffffffffffffff\n"


@pytest.mark.parametrize("damage", ["flip", "missing", "manifest", "no_manifest"])
def test_corrupt_or_missing_files_are_refused_in_one_line(image, tmp_path, damage):
    out = tmp_path / "img"
    write_images(image, out)
    target = out / "pe02" / "ptr_odd.bin"
    if damage == "flip":
        data = bytearray(target.read_bytes())
        data[0] ^= 1
        target.write_bytes(bytes(data))
        expect = "pe02/ptr_odd.bin is corrupt"
    elif damage == "missing":
        target.unlink()
        expect = "pe02/ptr_odd.bin is missing"
    elif damage == "manifest":
        (out / "manifest.json").write_text("{not json")
        expect = "not JSON"
    else:
        (out / "manifest.json").unlink()
        expect = "no manifest.json"
    with pytest.raises(DataError) as err:
        read_images(out)
    assert expect in str(err.value) and "\n" not in str(err.value)


def test_rewriting_replaces_the_directory_atomically(image, tmp_path):
    out = tmp_path / "img"
    write_images(image, out)
    (out / "stale.txt").write_text("old")
    small = pack_network(chain(np.random.default_rng(1), [5, 4], 0.5), roomy(2))
    write_images(small, out)
    assert not (out / "stale.txt").exists() and not (out / "pe02").exists()
    assert read_images(out).config.n_pe == 2
    assert [p.name for p in tmp_path.iterdir()] == ["img"]  # no temporary left behind


def test_narrow_words_round_trip_through_files(tmp_path):
    from helpers_eie import random_layer

    cfg = roomy(2, spmat_word_bits=32, spmat_words=64, act_bits=12, act_frac=5, acc_bits=30)
    image = pack_network([random_layer(np.random.default_rng(3), 9, 12, 0.4)], cfg)
    write_images(image, tmp_path / "img")
    line = (tmp_path / "img" / "pe00" / "spmat.hex").read_text().splitlines()[0]
    assert len(line) == 8  # 32-bit words
    assert len((tmp_path / "img" / "pe00" / "bias.bin").read_bytes()) == 2 * image.bias_used
    back = read_images(tmp_path / "img")
    assert np.array_equal(back.spmat, image.spmat) and np.array_equal(back.bias, image.bias)
    assert np.array_equal(back.codebook, image.codebook) and back.config == cfg
