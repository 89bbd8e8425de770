"""One entry point for every model file users bring: :func:`load_network`.

The format is recognised by the file's content, never its name:

- ``EIEZ`` magic: the project's compressed ``model.eie``;
- a ZIP archive (``PK\\x03\\x04``) is one of PyTorch's: an ``archive_format`` member marks a
  torch.export program (``torch.export.save``), a ``code/`` directory TorchScript
  (``torch.jit.save``), a ``data.pkl`` without ``code/`` a ``torch.save`` file (state_dict);
- a pickle (``\\x80`` protocol byte): a legacy ``torch.save`` file (state_dict);
- otherwise a protobuf that parses as an ONNX ``ModelProto`` with a graph.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from sw.errors import DataError
from sw.frontends.chains import ACTS, load_eie_model, load_state_dict, load_torchscript
from sw.frontends.ir import Network
from sw.frontends.onnx_file import load_onnx
from sw.frontends.torch_export import load_torch_export

FORMATS = "ONNX, a torch.export program (.pt2), TorchScript, a torch.save state_dict or model.eie"


def detect_format(path: str | Path) -> str:
    """``"eie"``, ``"torch.export"``, ``"torchscript"``, ``"state_dict"`` or ``"onnx"``."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    if not head:
        raise DataError(f"{path}: empty file (expected {FORMATS})")
    if head.startswith(b"EIEZ"):
        return "eie"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f"{path}: a corrupt ZIP archive ({e}); expected {FORMATS}") from None
        parts = [n.split("/", 1)[1] if "/" in n else n for n in names]
        if "archive_format" in parts:
            return "torch.export"
        if any(p.startswith("code/") for p in parts):
            return "torchscript"
        if "data.pkl" in parts:
            return "state_dict"
        raise DataError(f"{path}: a ZIP archive that is not a PyTorch file ({len(names)} "
                        f"members, none of archive_format, code/, data.pkl); expected {FORMATS}")
    if head[0] == 0x80:
        return "state_dict"
    return "onnx"


def load_network(path: str | Path, act: str = "relu") -> Network:
    """The :class:`~sw.frontends.ir.Network` in ``path``, split into EIE and host segments.

    ``act`` is the activation between the layers of a bare state_dict (which records none):
    one of ``relu`` (default), ``identity``, ``tanh``, ``sigmoid``, ``gelu``; other formats
    say their own activations. Every problem is a one-line :class:`~sw.errors.DataError`.
    """
    if act not in ACTS:
        raise DataError(f"unknown activation {act!r} (choose from {', '.join(ACTS)})")
    fmt = detect_format(path)
    if fmt == "eie":
        return load_eie_model(path)
    if fmt == "torch.export":
        return load_torch_export(path)
    if fmt == "torchscript":
        return load_torchscript(path)
    if fmt == "state_dict":
        return load_state_dict(path, act)
    return _load_onnx_or_fail(Path(path))


def _load_onnx_or_fail(path: Path) -> Network:
    import onnx

    raw = path.read_bytes()
    try:
        model = onnx.load_model_from_string(raw)
        ok = model.ir_version > 0 and len(model.graph.node) > 0
    except Exception:  # protobuf's DecodeError, or bytes that happen to parse as nonsense
        ok = False
    if not ok:
        if raw[:1] == b"\x08":  # protobuf field 1 (ModelProto.ir_version), as ONNX files begin
            raise DataError(f"{path}: a corrupt or truncated ONNX model (it does not parse)")
        raise DataError(f"{path}: not a model file this tool reads (expected {FORMATS})")
    return load_onnx(path, model)

