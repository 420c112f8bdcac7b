"""A small, deterministic, pickle-free container for optimizer and runner state.

Optimizer states and runner checkpoints are flat mappings of names to numpy
arrays and JSON scalars. `np.savez` would do, but it stamps the current time
into its zip headers, so the same state would not give the same bytes twice;
and pickle would let a checkpoint run code when it is loaded. The format here
is a little-endian `uint64` header length, a UTF-8 JSON header, then the raw
C-ordered array buffers, in header order.
"""

import json
import struct

import numpy as np

_MAGIC = b"PROMPTOPT-STATE-1\n"


class StateFormatError(ValueError):
    """Raised when bytes are not a promptopt state, or a value cannot be stored."""


def pack_state(fields):
    """Encodes a flat mapping into bytes.

    Args:
        fields: dict from `str` to a numpy array (any non-object dtype) or a
            JSON value (None, bool, int, float, str, or lists/dicts of those).

    Returns:
        bytes; `unpack_state(pack_state(f))` gives `f` back with arrays of
        the same dtype, shape and values, and equal states give equal bytes.
    """
    scalars = {}
    arrays = []
    buffers = []
    offset = 0
    for name in sorted(fields):
        value = fields[name]
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                raise StateFormatError(
                    f"State field {name!r} has dtype object, which cannot be "
                    "stored without pickle. Store a numeric or bytes array "
                    "(e.g. np.frombuffer(data, np.uint8)) instead."
                )
            data = np.ascontiguousarray(value).tobytes()
            arrays.append(
                {
                    "name": name,
                    "dtype": value.dtype.str,
                    "shape": list(value.shape),
                    "offset": offset,
                    "nbytes": len(data),
                }
            )
            buffers.append(data)
            offset += len(data)
        else:
            scalars[name] = value
    try:
        header = json.dumps(
            {"scalars": scalars, "arrays": arrays},
            sort_keys=True,
            allow_nan=True,
        ).encode("utf-8")
    except TypeError as error:
        raise StateFormatError(
            f"State holds a value that is neither a numpy array nor JSON: "
            f"{error}. Convert it to an np.ndarray or a plain Python value."
        ) from None
    return b"".join(
        [_MAGIC, struct.pack("<Q", len(header)), header, *buffers]
    )


def unpack_state(data):
    """Decodes bytes written by `pack_state` into a dict (arrays are copies)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise StateFormatError(
            f"Expected bytes from state_to_bytes(), got "
            f"{type(data).__name__}. Pass the bytes exactly as they were "
            "returned."
        )
    data = bytes(data)
    if not data.startswith(_MAGIC):
        raise StateFormatError(
            "These bytes are not a promptopt state (bad magic header). Pass "
            "bytes produced by state_to_bytes() or a promptopt checkpoint."
        )
    start = len(_MAGIC)
    (header_length,) = struct.unpack("<Q", data[start : start + 8])
    header_end = start + 8 + header_length
    header = json.loads(data[start + 8 : header_end].decode("utf-8"))
    fields = dict(header["scalars"])
    for entry in header["arrays"]:
        begin = header_end + entry["offset"]
        buffer = data[begin : begin + entry["nbytes"]]
        if len(buffer) != entry["nbytes"]:
            raise StateFormatError(
                f"State field {entry['name']!r} is truncated (the bytes end "
                "early). The file was cut short; use an intact checkpoint."
            )
        fields[entry["name"]] = (
            np.frombuffer(buffer, dtype=np.dtype(entry["dtype"]))
            .reshape(entry["shape"])
            .copy()
        )
    return fields
