import json

import pytest

from sw.eie.config import PRESETS, EIEConfig
from sw.errors import ConfigError


def test_eie64_matches_the_paper():
    c = PRESETS["eie64"]
    assert (c.n_pe, c.queue_depth, c.entry_bits, c.entries_per_word) == (64, 8, 8, 8)
    assert c.spmat_words * c.spmat_word_bits // 8 == 128 * 1024  # 128 KB spmat per PE
    assert c.ptr_bits == 18 and c.max_gap == 15 and c.codebook_size == 16


@pytest.mark.parametrize(
    "change, words",
    [
        ({"n_pe": 0}, "n_pe"),
        ({"n_pe": 257}, "n_pe"),
        ({"queue_depth": 0}, "queue_depth"),
        ({"act_frac": 16}, "act_frac"),
        ({"acc_bits": 20}, "acc_bits"),
        ({"spmat_word_bits": 60}, "multiple"),
        ({"spmat_word_bits": 48}, "power of two"),
        ({"spmat_word_bits": 128}, "at most 64"),
        ({"ptr_depth": 1}, "ptr_depth"),
        ({"n_pe": 2.5}, "integer"),
    ],
)
def test_impossible_configs_are_refused_naming_the_field(change, words):
    with pytest.raises(ConfigError, match=words):
        PRESETS["tiny"].replace(**change)


def test_load_preset_and_file(tmp_path):
    assert EIEConfig.load("tiny") is PRESETS["tiny"]
    f = tmp_path / "mine.json"
    f.write_text(json.dumps({"base": "tiny", "n_pe": 2}))
    c = EIEConfig.load(f)
    assert c.n_pe == 2 and c.name == "mine" and c.spmat_words == PRESETS["tiny"].spmat_words
    f.write_text(json.dumps({"n_pes": 2}))
    with pytest.raises(ConfigError, match="unknown configuration field"):
        EIEConfig.load(f)
    with pytest.raises(ConfigError, match="no preset or config file"):
        EIEConfig.load(tmp_path / "missing.json")
    assert EIEConfig.from_dict(PRESETS["eie64"].to_dict()) == PRESETS["eie64"]


def test_atomic_outputs_get_normal_permissions(tmp_path):
    import os

    from sw.fsutil import atomic_dir, atomic_write_bytes

    mask = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "f.bin", b"x")
        with atomic_dir(tmp_path / "d") as d:
            (d / "g").write_text("y")
    finally:
        os.umask(mask)
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "d" / "g").read_text() == "y"
