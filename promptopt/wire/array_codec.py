"""Float arrays in JSON: little-endian float32 bytes, base64-encoded."""

import base64
import binascii

import numpy as np

ARRAY_DTYPE = "float32"


class ArrayDecodeError(ValueError):
    """A JSON array payload does not decode to the array it describes."""


def encode_array(array):
    """Returns `{"dtype": "float32", "shape": [...], "data": base64}`.

    Args:
        array: array-like of any shape; cast to float32 (C order,
            little-endian), so `decode_array(encode_array(a))` is bit-exact
            for float32 input.

    Example:

    ```python
    payload = encode_array(np.zeros((20, 576), "float32"))
    assert decode_array(payload).shape == (20, 576)
    ```
    """
    array = np.ascontiguousarray(np.asarray(array, dtype="<f4"))
    return {
        "dtype": ARRAY_DTYPE,
        "shape": [int(d) for d in array.shape],
        "data": base64.b64encode(array.tobytes()).decode("ascii"),
    }


def decode_array(payload):
    """Inverse of `encode_array`; raises `ArrayDecodeError` with the fix."""
    if hasattr(payload, "model_dump"):
        payload = payload.model_dump()
    dtype, shape, data = payload.get("dtype"), payload.get("shape"), payload.get("data")
    if dtype != ARRAY_DTYPE:
        raise ArrayDecodeError(
            f"Array dtype must be 'float32', got {dtype!r}. Send float32 "
            "values, little-endian, base64-encoded."
        )
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and d >= 0 for d in shape
    ):
        raise ArrayDecodeError(
            f"Array shape must be a list of non-negative ints, got {shape!r}."
        )
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise ArrayDecodeError(
            "Array data is not valid base64. Encode the raw float32 bytes "
            "with standard base64 (e.g. base64.b64encode(a.tobytes()))."
        ) from None
    expected = 4 * int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected:
        raise ArrayDecodeError(
            f"Array data holds {len(raw)} bytes, but shape {shape} of float32 "
            f"needs {expected}. Send exactly prod(shape) float32 values."
        )
    return np.frombuffer(raw, dtype="<f4").reshape(shape).astype("float32")
