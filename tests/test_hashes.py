"""labkit.hashes against sha256 computed independently with hashlib."""

import builtins
import hashlib
import os
import struct

import numpy as np
import pytest
from safetensors.numpy import save_file

from labkit import hashes
from labkit.errors import UnsupportedFile

MiB = 1 << 20


def _write(path, data):
    path.write_bytes(data)
    return path


def _random_bytes(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def test_whole_file_hashes_match_hashlib_across_many_chunks(tmp_path):
    data = _random_bytes(3 * MiB + 12345)  # several 1 MiB reads plus a partial one
    path = _write(tmp_path / "model.safetensors", data)
    full = hashlib.sha256(data).hexdigest()
    assert hashes.sha256(path) == full
    assert hashes.autov2(path) == full[:10]
    assert hashes.ti_hash(path) == full[:12]
    assert hashes.sha256(str(path)) == full  # str and Path alike


@pytest.mark.parametrize(
    "size, window",
    [
        (2 * MiB, slice(MiB, MiB + 64 * 1024)),  # the full 64 KiB window
        (MiB + 1000, slice(MiB, MiB + 1000)),  # what is there after 1 MiB
        (4096, slice(0, 0)),  # shorter than 1 MiB: A1111 hashes an empty read
    ],
)
def test_autov1_hashes_64k_at_one_mib_like_a1111(tmp_path, size, window):
    data = _random_bytes(size, seed=size)
    path = _write(tmp_path / f"m{size}.ckpt", data)
    assert hashes.autov1(path) == hashlib.sha256(data[window]).hexdigest()[:8]


def test_autov1_of_a_short_file_is_the_empty_digest(tmp_path):
    path = _write(tmp_path / "tiny.bin", b"abc")
    assert hashes.autov1(path) == "e3b0c442"  # sha256(b"")


def _lora_file(path, metadata):
    tensors = {
        "lora_unet_x_attn2_to_k.lora_down.weight": np.arange(8 * 768, dtype=np.float16).reshape(8, 768),
        "lora_unet_x_attn2_to_k.lora_up.weight": np.ones((320, 8), dtype=np.float16),
        "lora_unet_x_attn2_to_k.alpha": np.array(4.0, dtype=np.float16),
    }
    save_file(tensors, str(path), metadata=metadata)
    return path


def test_autov3_hashes_the_bytes_after_the_header(tmp_path):
    path = _lora_file(tmp_path / "a.safetensors", {"ss_output_name": "a"})
    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    assert hashes.autov3(path) == hashlib.sha256(data[8 + header_len:]).hexdigest()[:12]
    assert hashes.autov3(path) != hashes.sha256(path)[:12]


def test_autov3_ignores_metadata_autov2_does_not(tmp_path):
    a = _lora_file(tmp_path / "a.safetensors", {"ss_output_name": "a", "ss_tag_frequency": "{}"})
    b = _lora_file(tmp_path / "b.safetensors", {"ss_output_name": "a much longer name", "note": "re-saved"})
    assert a.read_bytes() != b.read_bytes()
    assert hashes.autov3(a) == hashes.autov3(b)
    assert hashes.autov2(a) != hashes.autov2(b)


def test_autov3_refuses_a_file_that_is_not_safetensors(tmp_path):
    path = _write(tmp_path / "notes.txt", b"hello, this is plain text and no safetensors header")
    with pytest.raises(UnsupportedFile, match="not a .safetensors file"):
        hashes.autov3(path)


def test_missing_file_raises_unsupported_file(tmp_path):
    with pytest.raises(UnsupportedFile, match="no such file"):
        hashes.autov2(tmp_path / "absent.safetensors")


@pytest.fixture
def open_count(monkeypatch):
    """Count every `open()` call made while the test runs."""
    calls = []
    real_open = builtins.open

    def counting_open(*args, **kwargs):
        calls.append(args[0])
        return real_open(*args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    return calls


def test_an_unchanged_file_is_hashed_once(tmp_path, open_count):
    path = _write(tmp_path / "m.safetensors", _random_bytes(5000))
    first = hashes.sha256(path)
    opened = len(open_count)
    assert opened == 1
    assert hashes.sha256(path) == first
    assert hashes.autov2(path) == first[:10]
    assert len(open_count) == opened  # served from the cache, the file was not read again


def test_cache_sees_new_content_with_new_mtime(tmp_path):
    path = _write(tmp_path / "m.safetensors", b"A" * 5000)
    before = hashes.sha256(path)
    st = os.stat(path)
    path.write_bytes(b"B" * 5000)  # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a clearly later mtime
    after = hashes.sha256(path)
    assert after != before
    assert after == hashlib.sha256(b"B" * 5000).hexdigest()


def test_cache_sees_new_size_even_with_the_same_mtime(tmp_path):
    path = _write(tmp_path / "m.safetensors", b"A" * 5000)
    before = hashes.autov2(path)
    st = os.stat(path)
    path.write_bytes(b"A" * 6000)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # restore the old mtime: only the size differs
    assert hashes.autov2(path) != before
    assert hashes.autov2(path) == hashlib.sha256(b"A" * 6000).hexdigest()[:10]


def test_a_generation_does_not_hash_the_model_file_but_saving_its_picture_does(tmp_path, monkeypatch):
    """The file's hash (seconds for a full SDXL file) is computed when a recipe needs it, outside the timed call;
    the timings' total covers everything the call spent."""
    import labkit
    from labkit import hashes

    path = labkit.open("toy").save_single_file(tmp_path / "mine.safetensors")
    lab = labkit.open(path)
    hashed = []
    real = hashes.sha256
    monkeypatch.setattr(hashes, "sha256", lambda p: hashed.append(p) or real(p))
    r = lab.txt2img("a red circle", steps=2, seed=1)
    assert hashed == [] and r.timings["total"] >= sum(v for k, v in r.timings.items() if k != "total")
    saved = r.save(tmp_path / "out.png")
    assert len(hashed) == 1
    assert labkit.read_recipe(saved).model["hash"] == real(path)[:10]
