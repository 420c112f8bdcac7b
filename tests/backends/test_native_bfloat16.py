"""The default search precision follows what the machine computes natively."""

import pytest

from promptopt.backends import native_bfloat16
from promptopt.backends.native_bfloat16 import has_native_bfloat16
from promptopt.tuning.config import TuneConfig


@pytest.fixture
def cpu_only(monkeypatch):
    monkeypatch.setattr(native_bfloat16, "_backend_sees_an_accelerator", lambda: False)
    has_native_bfloat16.cache_clear()
    yield
    has_native_bfloat16.cache_clear()


@pytest.mark.parametrize("flags, native", [
    ("fpu sse2 avx2 fma", False),                 # e.g. this project's AMD EPYC
    ("fpu avx2 avx512f avx512bw", False),         # AVX-512 without its BF16 part
    ("fpu avx2 avx512f avx512_bf16", True),
    ("fpu avx2 amx_bf16 amx_tile", True),
])
def test_cpu_flags_decide(cpu_only, tmp_path, flags, native):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    assert has_native_bfloat16(str(path)) is native


def test_no_cpuinfo_counts_as_emulated(cpu_only, tmp_path):
    assert has_native_bfloat16(str(tmp_path / "absent")) is False


def test_search_methods_default_to_bfloat16_only_where_it_is_native(cpu_only, monkeypatch):
    for native in (False, True):
        monkeypatch.setattr(native_bfloat16, "has_native_bfloat16", lambda native=native: native)
        assert TuneConfig(method="bbt").resolved().dtype == ("bfloat16" if native else "float32")
        # Gradient methods stay in float32 either way; a given dtype is kept.
        assert TuneConfig(method="prompt").resolved().dtype == "float32"
        assert TuneConfig(method="bbt", dtype="bfloat16").resolved().dtype == "bfloat16"
