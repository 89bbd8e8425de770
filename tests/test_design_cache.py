"""sim.design: the cached Verilog always comes from the generator's sources on disk."""

from __future__ import annotations

import hw.verilog
import sim.design as design
from sw.eie.config import PRESETS


def test_verilog_is_generated_from_the_sources_on_disk_not_loaded_modules(tmp_path, monkeypatch):
    """A process whose loaded ``hw`` modules differ from the files (a long-lived Dask worker
    after an edit) must not write its stale RTL under the hash of the new files."""
    monkeypatch.setattr(design, "RTL", tmp_path)
    monkeypatch.setattr(hw.verilog, "generate", lambda *a, **k: (_ for _ in ()).throw(
        AssertionError("the in-process generator was used")))
    config = PRESETS["tiny"]
    path = design.verilog_for(config)
    text = path.read_text()
    assert path.parent == tmp_path and design._generator_hash(config) in path.name
    assert "module eie(" in text.replace(" (", "(") and "module eie_pe" in text
    assert design.verilog_for(config) == path  # second call: from the cache
    assert len(list(tmp_path.iterdir())) == 1
