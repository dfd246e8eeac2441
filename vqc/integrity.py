"""Telling a damaged model file (cut short by a full disk or an interrupted copy) from a file
of another kind, so that the message says which.

Both checks read the file's own framing, no more: they answer only "does this start like the
format, and does it end where its framing says it ends?". The loaders still do the real parsing.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

#: safetensors refuses headers above 100 MB; a larger length means another kind of file.
_MAX_SAFETENSORS_HEADER = 100_000_000


def _size(path: Path) -> str:
    return f"{path.stat().st_size:,} bytes"


def safetensors_damage(path: str | os.PathLike[str]) -> str | None:
    """Why a file that starts like a ``.safetensors`` file is truncated or corrupt, or ``None``
    (intact, or not a safetensors file at all)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        start = handle.read(9)
        if len(start) < 9:
            return (f"truncated or corrupt: {_size(path)}, too short for a safetensors file"
                    if size == 0 or _plausible_length(start) else None)
        (length,) = struct.unpack("<Q", start[:8])
        if start[8:9] != b"{" or not 2 <= length <= _MAX_SAFETENSORS_HEADER:
            return None  # not framed as a safetensors file
        if 8 + length > size:
            return (f"truncated or corrupt: {_size(path)}, but its header alone announces "
                    f"{8 + length:,}")
        handle.seek(8)
        try:
            header = json.loads(handle.read(length))
            end = max((int(v["data_offsets"][1]) for k, v in header.items()
                       if k != "__metadata__"), default=0)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return f"truncated or corrupt: {_size(path)}, with an unreadable header"
    if 8 + length + end > size:
        return f"truncated or corrupt: {_size(path)}, but its header announces {8 + length + end:,}"
    return None


def _plausible_length(start: bytes) -> bool:
    """Whether up to 8 bytes could begin a safetensors header length (a small little-endian
    number: its high bytes zero)."""
    return start[4:8] == b"\0" * len(start[4:8]) and any(start[:4])


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise EOFError
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def onnx_damage(path: str | os.PathLike[str]) -> str | None:
    """Why a file that starts like an ONNX model is truncated or corrupt, or ``None`` (intact
    framing, or not an ONNX model at all).

    An ONNX model is a protobuf ``ModelProto`` whose first field is ``ir_version`` (tag 0x08).
    The top-level fields are walked; one that runs past the end of the file means the file
    was cut short.
    """
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 2 or data[0] != 0x08:
        return None
    pos = 0
    try:
        while pos < len(data):
            key, pos = _varint(data, pos)
            wire = key & 7
            if key >> 3 == 0 or wire not in (0, 1, 2, 5):
                return f"truncated or corrupt: {_size(path)}, unreadable after byte {pos:,}"
            if wire == 0:
                _, pos = _varint(data, pos)
            else:
                if wire == 2:
                    length, pos = _varint(data, pos)
                else:
                    length = 8 if wire == 1 else 4
                if pos + length > len(data):
                    return (f"truncated or corrupt: {_size(path)}, but a field announces "
                            f"{pos + length:,}")
                pos += length
    except EOFError:
        return f"truncated or corrupt: {_size(path)}, cut in the middle of a field"
    except ValueError:
        return f"truncated or corrupt: {_size(path)}, unreadable after byte {pos:,}"
    return None


__all__ = ["onnx_damage", "safetensors_damage"]
