"""Model file hashes as A1111 and civitai write them ("Model hash", "Lora hashes", "TI hashes").

| name   | bytes hashed with sha256                          | kept      |
|--------|---------------------------------------------------|-----------|
| AutoV1 | 64 KiB at byte offset 1 MiB (legacy A1111)         | 8 hex     |
| AutoV2 | the whole file (A1111 "Model hash")               | 10 hex    |
| AutoV3 | a .safetensors file after its header (LoRA hash)  | 12 hex    |
| TI     | the whole file (A1111 "TI hashes")                | 12 hex    |

Files are read in 1 MiB chunks, so multi-GB checkpoints never sit in memory. Digests are cached per
(absolute path, size, mtime_ns): editing or replacing a file gives a fresh hash.
"""

import functools
import hashlib
import os

from .errors import UnsupportedFile

READ_SIZE = 1 << 20  # bytes per read while streaming
AUTOV1_OFFSET = 0x100000  # 1 MiB
AUTOV1_LENGTH = 0x10000  # 64 KiB


def _update_to_end(digest, f):
    """Feed `digest` with everything from the file's current position to its end."""
    for chunk in iter(lambda: f.read(READ_SIZE), b""):
        digest.update(chunk)


def _whole_file(f, size):
    digest = hashlib.sha256()
    _update_to_end(digest, f)
    return digest


def _legacy_window(f, size):
    # A1111's old hash: seek to 1 MiB and hash what a 64 KiB read returns. A shorter file yields
    # fewer bytes (nothing at all below 1 MiB), exactly as A1111's `model_hash` does.
    f.seek(AUTOV1_OFFSET)
    return hashlib.sha256(f.read(AUTOV1_LENGTH))


def _after_safetensors_header(f, size):
    head = f.read(8)
    header_len = int.from_bytes(head, "little") if len(head) == 8 else -1
    if header_len < 0 or 8 + header_len > size:
        raise UnsupportedFile(
            f"{f.name} is not a .safetensors file (its header is missing or longer than the file), "
            "so it has no AutoV3 hash; use autov2() for other files."
        )
    f.seek(8 + header_len)
    digest = hashlib.sha256()
    _update_to_end(digest, f)
    return digest


# hash kind -> how to feed sha256 from an open file (f, size)
_HASHERS = {
    "sha256": _whole_file,
    "autov1": _legacy_window,
    "autov3": _after_safetensors_header,
}


@functools.lru_cache(maxsize=512)
def _cached_hexdigest(path, size, mtime_ns, kind):
    """Full sha256 hex of `kind`; size and mtime_ns are part of the cache key only."""
    with open(path, "rb") as f:
        return _HASHERS[kind](f, size).hexdigest()


def _hexdigest(path, kind):
    path = os.path.abspath(os.fspath(path))
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UnsupportedFile(f"Cannot hash {path}: no such file.") from None
    if not os.path.isfile(path):
        raise UnsupportedFile(f"Cannot hash {path}: it is not a regular file.")
    return _cached_hexdigest(path, st.st_size, st.st_mtime_ns, kind)


def sha256(path) -> str:
    """Full sha256 hex digest of the whole file."""
    return _hexdigest(path, "sha256")


def autov2(path) -> str:
    """A1111 "Model hash" / civitai AutoV2: sha256 of the whole file, first 10 hex chars."""
    return sha256(path)[:10]


def autov1(path) -> str:
    """Legacy A1111 hash / civitai AutoV1: sha256 of 64 KiB at offset 1 MiB, first 8 hex chars."""
    return _hexdigest(path, "autov1")[:8]


def autov3(path) -> str:
    """LoRA "addnet" hash / civitai AutoV3: sha256 of a .safetensors file after its header, first 12."""
    return _hexdigest(path, "autov3")[:12]


def ti_hash(path) -> str:
    """A1111 "TI hashes" entry for an embedding: sha256 of the whole file, first 12 hex chars."""
    return sha256(path)[:12]
