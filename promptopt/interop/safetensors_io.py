"""The safetensors file format, in numpy: what PEFT's adapter files are written in.

promptopt's core must not depend on the `safetensors` package (it comes
with transformers, which promptopt does not need), and the format is small
enough to write by hand (https://github.com/huggingface/safetensors):

    [8 bytes]  N, the header's length, unsigned little-endian
    [N bytes]  a JSON object: {"__metadata__": {str: str}, name: {"dtype":
               "F32", "shape": [..], "data_offsets": [begin, end]}, ...},
               padded with spaces to a multiple of 8 bytes
    [rest]     the tensors' raw little-endian bytes, C order; the offsets
               count from the end of the header

`serialize` writes the very bytes `safetensors.numpy.save` writes (checked
in tests/interop/test_safetensors_io.py): tensors in descending order of
the Rust crate's dtype enum (so wider types first), then by name; compact
JSON; metadata keys sorted. (The crate keeps metadata in a Rust HashMap, so
with two or more metadata keys even its own bytes vary from run to run; PEFT
writes one, `{"format": "pt"}`.)
"""

import json
import os
import struct
import tempfile

import numpy as np

# Rust's `Dtype` enum order, for the tensor order the crate writes (it
# sorts by dtype, descending, then by name). Only the dtypes numpy has,
# plus BF16, appear here.
_DTYPE_RANK = ("BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64",
               "I64", "U64")
_NUMPY_TO_SAFETENSORS = {
    "bool": "BOOL", "uint8": "U8", "int8": "I8", "int16": "I16", "uint16": "U16",
    "float16": "F16", "bfloat16": "BF16", "int32": "I32", "uint32": "U32", "float32": "F32",
    "float64": "F64", "int64": "I64", "uint64": "U64",
}
_SAFETENSORS_TO_NUMPY = {
    "BOOL": "|b1", "U8": "|u1", "I8": "|i1", "I16": "<i2", "U16": "<u2", "F16": "<f2",
    "I32": "<i4", "U32": "<u4", "F32": "<f4", "F64": "<f8", "I64": "<i8", "U64": "<u8",
}
# The crate refuses headers above 100 MB; so do we, before allocating one.
_MAX_HEADER_BYTES = 100_000_000
_HINT = "Give an adapter_model.safetensors written by PEFT or promptopt."


class SafetensorsError(ValueError):
    """A file is not valid safetensors; the message names the problem and the fix."""


def serialize(tensors, metadata=None):
    """The safetensors bytes of `tensors`.

    Args:
        tensors: dict, name -> numpy array of any shape (bool, (u)int8-64,
            float16/32/64, or ml_dtypes' bfloat16).
        metadata: optional dict of str -> str (PEFT writes
            `{"format": "pt"}`).

    Returns:
        bytes.
    """
    entries = []
    for name, value in tensors.items():
        array = np.asarray(value)
        dtype = _NUMPY_TO_SAFETENSORS.get(array.dtype.name)
        if dtype is None:
            raise SafetensorsError(
                f"Tensor {name!r} has dtype {array.dtype}, which safetensors cannot hold. "
                "Cast it to a float or integer type first.")
        if dtype == "BF16":
            array = array.view("uint16")  # numpy has no bfloat16 byte order of its own
        raw = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False)
        entries.append((name, dtype, list(array.shape), raw.tobytes()))
    entries.sort(key=lambda e: (-_DTYPE_RANK.index(e[1]), e[0].encode()))
    header = {}
    if metadata:
        bad = [k for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))]
        if bad:
            raise SafetensorsError(
                f"safetensors metadata maps strings to strings; {bad[0]!r} does not. "
                "Convert the values with str() or json.dumps().")
        header["__metadata__"] = dict(sorted(metadata.items()))
    offset = 0
    for name, dtype, shape, raw in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    encoded = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # the crate aligns the data to 8 bytes
    return struct.pack("<Q", len(encoded)) + encoded + b"".join(e[3] for e in entries)


def deserialize(data, source="the data"):
    """`(tensors, metadata)` from safetensors bytes.

    BF16 tensors come back as float32 (exactly: a bfloat16 is the top half
    of a float32), since numpy has no bfloat16.

    Args:
        data: bytes.
        source: str naming the file, for errors.

    Returns:
        `(dict name -> numpy array, dict str -> str)`, tensors in file order.

    Raises:
        SafetensorsError: a truncated file, a bad header, or offsets that
            do not tile the data.
    """
    if len(data) < 8:
        raise SafetensorsError(f"{source} is not safetensors: {len(data)} bytes, shorter than "
                               f"the 8-byte header length. {_HINT}")
    (length,) = struct.unpack("<Q", data[:8])
    if length > _MAX_HEADER_BYTES or 8 + length > len(data):
        raise SafetensorsError(f"{source} is not safetensors: its header length {length} runs "
                               f"past the file's {len(data)} bytes. {_HINT}")
    try:
        header = json.loads(data[8:8 + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SafetensorsError(f"{source} is not safetensors: its header is not JSON "
                               f"({error}). {_HINT}") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{source} is not safetensors: its header is not a JSON object. "
                               f"{_HINT}")
    metadata = header.pop("__metadata__", None) or {}
    body = memoryview(data)[8 + length:]
    tensors, expected_begin = {}, 0
    for name, info in sorted(header.items(), key=lambda item: _offsets(item, source)):
        begin, end = _offsets((name, info), source)
        dtype = info.get("dtype")
        if dtype not in _SAFETENSORS_TO_NUMPY and dtype != "BF16":
            raise SafetensorsError(f"{source}: tensor {name!r} has dtype {dtype!r}, which this "
                                   "reader does not know (it reads BOOL, integers, F16, BF16, "
                                   "F32, F64).")
        shape = [int(n) for n in info.get("shape", [])]
        itemsize = 2 if dtype == "BF16" else np.dtype(_SAFETENSORS_TO_NUMPY[dtype]).itemsize
        if begin != expected_begin or end - begin != itemsize * int(np.prod(shape)) or end > len(body):
            raise SafetensorsError(
                f"{source} is corrupt: tensor {name!r} ({dtype} {shape}) has data_offsets "
                f"[{begin}, {end}], which do not follow the previous tensor (at {expected_begin}) "
                f"or do not fit its shape or the file. {_HINT}")
        expected_begin = end
        raw = body[begin:end]
        if dtype == "BF16":
            bits = np.frombuffer(raw, "<u2").astype("uint32") << 16
            array = bits.view("float32").reshape(shape)
        else:
            array = np.frombuffer(raw, _SAFETENSORS_TO_NUMPY[dtype]).reshape(shape).copy()
            array = array.astype(array.dtype.newbyteorder("="), copy=False)
        tensors[name] = array
    if expected_begin != len(body):
        raise SafetensorsError(f"{source} is corrupt: {len(body) - expected_begin} bytes after "
                               f"the last tensor belong to none. {_HINT}")
    return tensors, metadata


def _offsets(item, source):
    name, info = item
    offsets = info.get("data_offsets") if isinstance(info, dict) else None
    if not (isinstance(offsets, list) and len(offsets) == 2
            and all(isinstance(o, int) and o >= 0 for o in offsets) and offsets[0] <= offsets[1]):
        raise SafetensorsError(f"{source} is corrupt: tensor {name!r} has no valid data_offsets "
                               f"[begin, end] ({offsets!r}). {_HINT}")
    return tuple(offsets)


def save_file(tensors, path, metadata=None):
    """Writes `serialize(tensors, metadata)` to `path` atomically; returns the path."""
    path = os.fspath(path)
    data = serialize(tensors, metadata)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp.safetensors")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def load_file(path):
    """`(tensors, metadata)` of the safetensors file at `path` (see `deserialize`)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No safetensors file at {path}. {_HINT}")
    with open(path, "rb") as f:
        return deserialize(f.read(), source=path)
