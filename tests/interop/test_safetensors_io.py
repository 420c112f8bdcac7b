"""promptopt's numpy safetensors writer and reader, against the `safetensors` package."""

import json
import struct

import numpy as np
import pytest

from promptopt.interop import safetensors_io
from promptopt.interop.safetensors_io import SafetensorsError


def _tensors():
    rng = np.random.default_rng(0)
    return {
        "prompt_embeddings": rng.normal(size=(20, 576)).astype("float32"),
        "b_f64": rng.normal(size=(3, 2)),
        "a_f16": rng.normal(size=(4,)).astype("float16"),
        "c_i64": np.arange(5, dtype="int64"),
        "d_i32": np.array(7, dtype="int32"),  # a scalar, shape []
        "e_u8": np.arange(3, dtype="uint8"),
        "f_bool": np.array([True, False, True]),
        "g_empty": np.zeros((0, 3), "float32"),
        "h_i8": np.array([-1, 2], dtype="int8"),
        "unicode ü": np.ones(2, "float32"),
    }


def test_round_trip_keeps_every_dtype_shape_value_and_metadata(tmp_path):
    tensors = _tensors()
    path = safetensors_io.save_file(tensors, tmp_path / "a.safetensors", {"format": "pt", "x": "1"})
    loaded, metadata = safetensors_io.load_file(path)
    assert metadata == {"format": "pt", "x": "1"}
    assert set(loaded) == set(tensors)
    for name, value in tensors.items():
        assert loaded[name].dtype == value.dtype, name
        assert loaded[name].shape == value.shape, name
        np.testing.assert_array_equal(loaded[name], value)


def test_header_is_8_byte_aligned_and_offsets_tile_the_data():
    data = safetensors_io.serialize(_tensors())
    (length,) = struct.unpack("<Q", data[:8])
    assert length % 8 == 0
    assert len(data) == 8 + length + sum(v.nbytes for v in _tensors().values())


def test_bfloat16_reads_back_as_the_same_float32_values():
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes (with TensorFlow) has bfloat16")
    value = np.array([1.0, -2.5, 3.140625, 1e-3], dtype=ml_dtypes.bfloat16)
    loaded, _ = safetensors_io.deserialize(safetensors_io.serialize({"w": value}))
    assert loaded["w"].dtype == np.float32
    np.testing.assert_array_equal(loaded["w"], value.astype("float32"))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d[:5], "shorter than the 8-byte header length"),
        (lambda d: struct.pack("<Q", 10**9) + d[8:], "runs past the file"),
        (lambda d: d[:8] + b"[" + d[9:], "its header is not JSON"),
        (lambda d: d[:-4], "do not follow the previous tensor"),
        (lambda d: d + b"\0\0\0\0", "bytes after the last tensor belong to none"),
    ],
)
def test_broken_files_are_refused_with_the_reason(mutate, message):
    data = safetensors_io.serialize({"x": np.ones((2, 2), "float32")})
    with pytest.raises(SafetensorsError, match=message):
        safetensors_io.deserialize(mutate(data))


def test_unsupported_dtype_and_non_string_metadata_are_refused():
    with pytest.raises(SafetensorsError, match="dtype complex64, which safetensors cannot hold"):
        safetensors_io.serialize({"z": np.ones(2, "complex64")})
    with pytest.raises(SafetensorsError, match="maps strings to strings"):
        safetensors_io.serialize({"x": np.ones(1, "float32")}, {"steps": 3})


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="No safetensors file at .*nope.safetensors"):
        safetensors_io.load_file(tmp_path / "nope.safetensors")


# --- against the reference implementation -------------------------------------

def _reference():
    return pytest.importorskip(
        "safetensors.numpy",
        reason="the `safetensors` package (installed with the compare extra: pip install "
        ".[compare]) is the reference this test compares bytes with")


@pytest.mark.parametrize("metadata", [None, {"format": "pt"}])
def test_bytes_equal_the_safetensors_package(metadata):
    reference = _reference()
    tensors = _tensors()
    assert safetensors_io.serialize(tensors, metadata) == reference.save(tensors, metadata=metadata)
    assert safetensors_io.serialize({}) == reference.save({})


def test_several_metadata_keys_differ_from_the_package_only_in_their_order():
    # The crate keeps metadata in a Rust HashMap, so with two or more keys
    # its own output changes from run to run; ours sorts them.
    reference = _reference()
    tensors, metadata = _tensors(), {"z": "1", "a": "2", "m": "3"}
    ours, theirs = safetensors_io.serialize(tensors, metadata), reference.save(tensors, metadata=metadata)
    assert len(ours) == len(theirs)
    (length,) = struct.unpack("<Q", ours[:8])
    assert ours[8 + length:] == theirs[8 + length:]
    assert json.loads(ours[8:8 + length]) == json.loads(theirs[8:8 + length])


def test_bfloat16_bytes_equal_the_safetensors_package():
    _reference()
    torch = pytest.importorskip("torch", reason="bfloat16 tensors are written through torch")
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes (with TensorFlow) has bfloat16")
    from safetensors.torch import save

    value = torch.tensor([[1.0, -2.5], [3.140625, 1e-3]], dtype=torch.bfloat16)
    ours = safetensors_io.serialize({"w": value.view(torch.uint16).numpy().view(ml_dtypes.bfloat16)})
    assert ours == save({"w": value})


def test_each_reads_the_others_files(tmp_path):
    reference = _reference()
    tensors = _tensors()
    ours_path = safetensors_io.save_file(tensors, tmp_path / "ours.safetensors", {"format": "pt"})
    for name, value in reference.load_file(ours_path).items():
        np.testing.assert_array_equal(value, tensors[name])
    reference.save_file(tensors, str(tmp_path / "theirs.safetensors"), metadata={"format": "pt"})
    loaded, metadata = safetensors_io.load_file(tmp_path / "theirs.safetensors")
    assert metadata == {"format": "pt"}
    for name, value in tensors.items():
        np.testing.assert_array_equal(loaded[name], value)
