import hashlib
import json
import os

import ml_dtypes
import numpy as np
import pytest

from promptopt.prompts import PromptFile
from promptopt.prompts import PromptMismatchError
from promptopt.prompts import embedding_fingerprint

HASH = "0123456789abcdef"


def _prompt(length=3, hidden_dim=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(length, hidden_dim)).astype("float32")


def test_save_and_load_round_trip_exactly(tmp_path):
    extra = {"task": {"name": "classification"}, "steps": 12, "words": [" a"]}
    original = PromptFile(_prompt(), "tiny-model", HASH, extra=extra)
    path = original.save(tmp_path / "p.npz")
    assert path == os.fspath(tmp_path / "p.npz")
    loaded = PromptFile.load(path)
    assert loaded.prompt.dtype == np.float32
    np.testing.assert_array_equal(loaded.prompt, original.prompt)
    assert loaded.model_id == "tiny-model"
    assert loaded.embedding_hash == HASH
    assert loaded.extra == extra
    assert (loaded.length, loaded.hidden_dim) == (3, 4)


def test_round_trip_keeps_every_bit_of_extreme_values(tmp_path):
    values = np.array(
        [[np.finfo("float32").tiny, -0.0, 1e38], [np.pi, -1e-45, 7.0]],
        dtype="float32",
    )
    path = PromptFile(values, "m", HASH).save(tmp_path / "p.npz")
    loaded = PromptFile.load(path).prompt
    assert loaded.tobytes() == values.tobytes()


def test_metadata_names_model_sizes_and_hash(tmp_path):
    prompt_file = PromptFile(_prompt(5, 8), "smollm2", HASH, extra={"k": 1})
    metadata = prompt_file.metadata()
    assert metadata == {
        "format": "promptopt.prompt",
        "format_version": 2,
        "model_id": "smollm2",
        "hidden_dim": 8,
        "prompt_length": 5,
        "embedding_hash": HASH,
        "extra": {"k": 1},
    }
    # The file itself stores the same metadata as one JSON string.
    path = prompt_file.save(tmp_path / "p.npz")
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == ["metadata", "prompt"]
        assert json.loads(str(data["metadata"])) == metadata


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    PromptFile(_prompt(), "m", HASH).save(tmp_path / "p.npz")
    PromptFile(_prompt(seed=1), "m", HASH).save(tmp_path / "p.npz")  # replace
    assert os.listdir(tmp_path) == ["p.npz"]
    np.testing.assert_array_equal(
        PromptFile.load(tmp_path / "p.npz").prompt, _prompt(seed=1)
    )


def test_failed_save_keeps_the_old_file_and_no_temporary_files(
    tmp_path, monkeypatch
):
    path = PromptFile(_prompt(), "m", HASH).save(tmp_path / "p.npz")

    def broken_savez(file, **arrays):
        file.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(KeyboardInterrupt):
        PromptFile(_prompt(seed=1), "m", HASH).save(path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["p.npz"]
    np.testing.assert_array_equal(PromptFile.load(path).prompt, _prompt())


def test_save_creates_missing_directories(tmp_path):
    path = PromptFile(_prompt(), "m", HASH).save(tmp_path / "a" / "b" / "p.npz")
    np.testing.assert_array_equal(PromptFile.load(path).prompt, _prompt())


def test_load_of_a_missing_file():
    with pytest.raises(FileNotFoundError, match=r"No prompt file at /nope/p\.npz\."):
        PromptFile.load("/nope/p.npz")


def test_load_refuses_a_file_that_is_not_an_archive(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"this is not a zip archive")
    with pytest.raises(
        ValueError,
        match=r"junk\.npz is not a promptopt prompt file \(.*\)\. Save prompts "
        r"with PromptedModel\.save_prompt\(\)\.",
    ):
        PromptFile.load(path)


def test_load_refuses_a_bare_npy_array(tmp_path):
    path = tmp_path / "prompt.npy"
    np.save(path, _prompt())
    with pytest.raises(
        ValueError,
        match=r"prompt\.npy is not a promptopt prompt file \(it holds a bare "
        r"array, not an \.npz archive\)\. Save prompts with "
        r"PromptedModel\.save_prompt\(\)\.",
    ):
        PromptFile.load(path)


def test_load_refuses_an_archive_without_a_prompt(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.zeros(3))
    with pytest.raises(
        ValueError, match=r"other\.npz is not a promptopt prompt file \("
    ):
        PromptFile.load(path)


@pytest.mark.parametrize(
    "metadata, reason",
    [
        ('{"format": "something.else"}', "its metadata has no promptopt format tag"),
        ("[1, 2]", "its metadata is not a JSON object"),
    ],
)
def test_load_refuses_foreign_metadata(tmp_path, metadata, reason):
    path = tmp_path / "other.npz"
    np.savez(path, prompt=_prompt(), metadata=np.array(metadata))
    with pytest.raises(
        ValueError,
        match=rf"other\.npz is not a promptopt prompt file \({reason}\)\.",
    ):
        PromptFile.load(path)


def test_load_refuses_a_prompt_whose_shape_contradicts_its_metadata(tmp_path):
    metadata = PromptFile(_prompt(3, 4), "m", HASH).metadata()
    path = tmp_path / "torn.npz"
    np.savez(path, prompt=_prompt(2, 4), metadata=np.array(json.dumps(metadata)))
    with pytest.raises(
        ValueError,
        match=r"torn\.npz is corrupt: its prompt has shape \(2, 4\) but its "
        r"metadata says \[P, H\] = \[3, 4\]\. Save the prompt again with "
        r"PromptedModel\.save_prompt\(\)\.",
    ):
        PromptFile.load(path)


def test_check_compatible_accepts_its_own_model():
    PromptFile(_prompt(), "m", HASH).check_compatible("m", HASH, 4)


def test_check_compatible_refuses_another_hidden_size():
    with pytest.raises(
        PromptMismatchError,
        match=r"Prompt file x has hidden size H=4 \(tuned for model 'm'\), but "
        r"this model \('n'\) has H=8\. Load it into the model it was tuned "
        r"for\.",
    ):
        PromptFile(_prompt(), "m", HASH).check_compatible(
            "n", HASH, 8, source="file x"
        )


def test_check_compatible_refuses_other_embeddings():
    with pytest.raises(
        PromptMismatchError,
        match=r"Prompt was tuned for model 'm' with embedding hash "
        r"0123456789abcdef, but this model \('m'\) has embedding hash "
        r"fedcba9876543210: the weights differ",
    ):
        PromptFile(_prompt(), "m", HASH).check_compatible(
            "m", "fedcba9876543210", 4
        )


def test_check_compatible_tells_an_old_file_how_to_be_renewed():
    old = PromptFile(_prompt(), "m", HASH, format_version=1)
    with pytest.raises(
        PromptMismatchError,
        match=r"the weights differ, so the prompt would mean something else\. "
        r"Load it into the model it was tuned for\. Its format version 1 hash "
        r"is of the exact float32 weights: load it into the float32 model, not "
        r"a cast_backbone copy, and save it again",
    ):
        old.check_compatible("m", "fedcba9876543210", 4)


def _version_1_fingerprint(table):
    # The version 1 algorithm, written out: shape, then exact float32 bytes.
    array = np.ascontiguousarray(table, dtype="float32")
    digest = hashlib.sha256(str(array.shape).encode())
    digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def test_a_version_1_file_loads_with_its_version_and_float32_hash(tmp_path):
    table = _prompt(6, 4, seed=2)
    old_hash = _version_1_fingerprint(table)
    assert embedding_fingerprint(table, format_version=1) == old_hash
    assert embedding_fingerprint(table) != old_hash
    metadata = {
        "format": "promptopt.prompt",
        "format_version": 1,
        "model_id": "m",
        "hidden_dim": 4,
        "prompt_length": 3,
        "embedding_hash": old_hash,
        "extra": {},
    }
    path = tmp_path / "old.npz"
    np.savez(path, prompt=_prompt(), metadata=np.array(json.dumps(metadata)))
    loaded = PromptFile.load(path)
    assert loaded.format_version == 1
    loaded.check_compatible("m", embedding_fingerprint(table, 1), 4)
    with pytest.raises(PromptMismatchError, match="format version 1 hash"):
        loaded.check_compatible("m", embedding_fingerprint(table), 4)
    # Saved again, it stays a consistent version 1 file.
    assert PromptFile.load(loaded.save(tmp_path / "again.npz")).format_version == 1


def test_a_file_of_an_unknown_version_is_refused(tmp_path):
    metadata = dict(PromptFile(_prompt(), "m", HASH).metadata(), format_version=3)
    path = tmp_path / "new.npz"
    np.savez(path, prompt=_prompt(), metadata=np.array(json.dumps(metadata)))
    with pytest.raises(
        ValueError,
        match=r"new\.npz has format version 3, but this promptopt reads "
        r"versions 1 to 2\. Upgrade promptopt to load it\.",
    ):
        PromptFile.load(path)
    with pytest.raises(ValueError, match="Unknown format version 3"):
        embedding_fingerprint(_prompt(), format_version=3)


@pytest.mark.parametrize("version", [1, 2])
def test_fingerprint_is_a_stable_16_digit_hex_string(version):
    table = _prompt(6, 3)
    fingerprint = embedding_fingerprint(table, version)
    assert len(fingerprint) == 16
    int(fingerprint, 16)
    assert embedding_fingerprint(table.copy(), version) == fingerprint
    # Any float dtype or memory layout of the same values gives the same hash.
    assert embedding_fingerprint(table.astype("float64"), version) == fingerprint
    assert embedding_fingerprint(np.asfortranarray(table), version) == fingerprint
    other = embedding_fingerprint(table, 3 - version)
    assert other != fingerprint


def test_fingerprint_is_unchanged_by_casting_to_bfloat16_and_back():
    table = _prompt(50, 8, seed=3)
    half = table.astype(ml_dtypes.bfloat16)
    assert not np.array_equal(half.astype("float32"), table)  # rounding happened
    fingerprint = embedding_fingerprint(table)
    assert embedding_fingerprint(half) == fingerprint
    assert embedding_fingerprint(half.astype("float32")) == fingerprint
    # Version 1 hashed the exact bytes, so a bfloat16 copy differed.
    assert embedding_fingerprint(half, 1) != embedding_fingerprint(table, 1)


def test_bfloat16_rounding_is_the_casts_even_at_ties_and_extremes():
    # Halfway cases (both parities), subnormals, the float32 maximum (which
    # rounds up to inf), inf and signed zero: each must round as the cast.
    bits = np.array(
        [0x3F808000, 0x3F818000, 0xBF808000, 0x00008000, 0x00018001,
         0x7F7FFFFF, 0x7F800000, 0xFF800000, 0x80000000, 0x3F80FFFF],
        dtype="uint32",
    )
    special = bits.view("float32")
    for value in special:
        cast = np.array([value]).astype(ml_dtypes.bfloat16)
        assert embedding_fingerprint([value]) == embedding_fingerprint(cast), value
    # And the hash sees the difference between neighbouring bfloat16 values.
    assert embedding_fingerprint(special[:1]) != embedding_fingerprint(special[1:2])


def test_fingerprint_ignores_changes_within_bfloat16_rounding_only():
    table = _prompt(5, 3)
    reference = embedding_fingerprint(table)
    halves = table.astype(ml_dtypes.bfloat16)
    seen = {reference}
    for index in np.ndindex(table.shape):
        # The smallest float32 change is below bfloat16's resolution (unless
        # it crosses a rounding boundary, which random values never hit) ...
        tiny = table.copy()
        tiny[index] = np.nextafter(tiny[index], np.float32(np.inf))
        assert embedding_fingerprint(tiny) == reference
        # ... while moving one entry to the next bfloat16 value is seen.
        changed = halves.copy()
        changed[index] = np.nextafter(changed[index], np.inf, dtype=changed.dtype)
        seen.add(embedding_fingerprint(changed))
    assert len(seen) == table.size + 1


def test_version_1_fingerprint_changes_when_any_single_element_changes():
    table = _prompt(5, 3)
    reference = embedding_fingerprint(table, 1)
    seen = {reference}
    for index in np.ndindex(table.shape):
        changed = table.copy()
        # The smallest possible change: the next float32 up.
        changed[index] = np.nextafter(changed[index], np.float32(np.inf))
        seen.add(embedding_fingerprint(changed, 1))
    assert len(seen) == table.size + 1


@pytest.mark.parametrize("version", [1, 2])
def test_fingerprint_depends_on_the_shape_not_only_the_bytes(version):
    table = _prompt(6, 2)
    assert embedding_fingerprint(table, version) != embedding_fingerprint(
        table.reshape(3, 4), version
    )
