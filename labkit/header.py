"""The .safetensors header: the tensor table and `__metadata__` of a file, read and validated without loading a
tensor (and without torch), with errors that say what is wrong and what to do.

    read_header(path)                  -> ({key: {"dtype", "shape", "data_offsets"}}, metadata)
    read_header_at(path)               -> the same and the byte offset where tensor data starts
    read_scalars(path, header, start, keys)   one-element tensors (a LoRA's alphas) read by their bytes
    read_tensors(path)                 every tensor, read by its byte offsets (torch)
    read_tensor(fd, entry, start)      one tensor, or a block of its rows
"""

import json
import math
import os
import struct
from pathlib import Path

from .errors import UnsafeFile, UnsupportedFile

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors format's own limit on the JSON header
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
PICKLE_MAGICS = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")  # zip, pickle 2-5

# safetensors dtype -> (bytes per element, torch-style name)
DTYPES = {
    "F64": (8, "float64"),
    "F32": (4, "float32"),
    "F16": (2, "float16"),
    "BF16": (2, "bfloat16"),
    "F8_E4M3": (1, "float8_e4m3fn"),
    "F8_E5M2": (1, "float8_e5m2"),
    "I64": (8, "int64"),
    "I32": (4, "int32"),
    "I16": (2, "int16"),
    "I8": (1, "int8"),
    "U64": (8, "uint64"),
    "U32": (4, "uint32"),
    "U16": (2, "uint16"),
    "U8": (1, "uint8"),
    "BOOL": (1, "bool"),
}
# dtype -> struct format for reading one scalar (bfloat16 is decoded by hand)
SCALAR_FORMATS = {"F64": "<d", "F32": "<f", "F16": "<e", "I64": "<q", "I32": "<i", "I16": "<h", "I8": "<b",
                  "U8": "<B"}
SCALAR_DTYPES = (*SCALAR_FORMATS, "BF16")


def _missing(path):
    return UnsupportedFile(
        f"No such file: {path} (working directory {os.getcwd()}). Check the path; for labkit's "
        "built-in models pass a name from labkit.models() instead, e.g. labkit.open('toy')."
    )


def _unsafe(path):
    return UnsafeFile(
        f"{path} is a pickled PyTorch checkpoint: unpickling can run arbitrary code hidden in the file, "
        "so labkit does not read it. Convert it to .safetensors once (with a tool you trust) and use that; "
        "if you trust its source, labkit.open(path, allow_pickle=True) loads it with "
        "torch.load(weights_only=True)."
    )


def _not_safetensors(path, why):
    return UnsupportedFile(
        f"{path} is not a .safetensors file ({why}). labkit reads single-file .safetensors checkpoints, "
        "LoRAs, VAEs and embeddings; open a diffusers folder with labkit.open(folder)."
    )


def _corrupt(path, why):
    return UnsupportedFile(
        f"{path} has a corrupt or truncated .safetensors header: {why}. Download it again (an interrupted "
        "download is the usual cause) and compare its sha256 with the one the site lists."
    )


def _is_int_list(value):
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def _check_entry(path, key, entry, data_size):
    """Raise if one tensor entry of the header is malformed or points past the end of the file."""
    if not (isinstance(entry, dict) and isinstance(entry.get("dtype"), str)
            and _is_int_list(entry.get("shape")) and _is_int_list(entry.get("data_offsets"))
            and len(entry["data_offsets"]) == 2):
        raise _corrupt(path, f"entry {key!r} lacks a dtype, shape or data_offsets pair")
    begin, end = entry["data_offsets"]
    if not 0 <= begin <= end:
        raise _corrupt(path, f"tensor {key!r} has data_offsets {entry['data_offsets']}")
    if end > data_size:
        raise _corrupt(path, f"tensor {key!r} ends at data byte {end}, past the file's end ({data_size} data bytes)")
    itemsize = DTYPES.get(entry["dtype"], (None, None))[0]
    if itemsize is not None and end - begin != math.prod(entry["shape"]) * itemsize:
        raise _corrupt(path, f"tensor {key!r} has {end - begin} bytes for shape {entry['shape']} of {entry['dtype']}")


def _looks_like_safetensors(head):
    """A plausible length field followed by "{": checked before pickle magic, which a length can mimic."""
    return len(head) == 9 and 2 <= int.from_bytes(head[:8], "little") <= MAX_HEADER_BYTES and head[8:] == b"{"


def _parse_header(path, raw, data_size):
    """The JSON header -> (tensor entries, metadata), validated against the data size."""
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _corrupt(path, f"the JSON header does not parse ({e})") from None
    if not isinstance(header, dict):
        raise _corrupt(path, "the JSON header is not an object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise _corrupt(path, "__metadata__ is not an object")
    for key, entry in header.items():
        _check_entry(path, key, entry, data_size)
    return header, metadata


def read_header_at(path):
    """(tensor entries, metadata, byte offset where tensor data starts); reads only the header."""
    path = Path(path)
    if not path.exists():
        raise _missing(path)
    if path.is_dir():
        raise UnsupportedFile(f"{path} is a folder: inspect() reads one .safetensors file; "
                              "labkit.open(folder) opens a diffusers folder.")
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise _unsafe(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(9)  # the length field and the header's first byte, which the spec fixes as "{"
        header_len = int.from_bytes(head[:8], "little")
        if not _looks_like_safetensors(head) and head.startswith(PICKLE_MAGICS):
            raise _unsafe(path)
        if len(head) < 9:
            raise _not_safetensors(path, f"only {size} bytes long")
        if not 2 <= header_len <= MAX_HEADER_BYTES:
            raise _not_safetensors(path, f"its first 8 bytes give an implausible header length, {header_len}")
        if head[8:] != b"{":
            raise _not_safetensors(path, "no JSON header after the length field")
        if 8 + header_len > size:
            raise _corrupt(path, f"the header claims {header_len} bytes but only {size - 8} follow")
        raw = b"{" + f.read(header_len - 1)
    header, metadata = _parse_header(path, raw, data_size=size - 8 - header_len)
    return header, metadata, 8 + header_len


def read_header(path):
    """The .safetensors header of `path`: ({key: {"dtype", "shape", "data_offsets"}}, metadata dict).

    Reads the 8-byte length and the JSON header, nothing else. Raises `UnsafeFile` for pickled
    checkpoints and `UnsupportedFile` for missing, foreign, truncated or corrupt files.
    """
    header, metadata, _ = read_header_at(path)
    return header, metadata


def _decode_scalar(dtype, raw):
    if dtype == "BF16":  # the upper half of a float32
        return struct.unpack("<f", b"\x00\x00" + raw)[0]
    return float(struct.unpack(SCALAR_FORMATS[dtype], raw)[0])


def read_scalars(path, header, data_start, keys):
    """{key: float} for one-element tensors among `keys`, reading just their bytes."""
    values = {}
    with open(path, "rb") as f:
        for key in keys:
            entry = header[key]
            if math.prod(entry["shape"]) != 1 or entry["dtype"] not in SCALAR_DTYPES:
                continue
            begin, end = entry["data_offsets"]
            f.seek(data_start + begin)
            values[key] = _decode_scalar(entry["dtype"], f.read(end - begin))
    return values


def read_tensors(path) -> dict:
    """{key: torch tensor} of a .safetensors file, each read by its byte offsets (`read_tensor`).

    What `safetensors.torch.load_file` gives, without its leak (safetensors 0.8's `load_file` and `safe_open` keep
    two Python ints per tensor alive for good, which adds up when small files are opened again and again: the
    embedded models, benchmarks/memory.py) and without a memory map, whose pages would count as resident beside
    the copies while the file is read."""
    header, _, start = read_header_at(path)
    with open(path, "rb") as f:
        return {key: read_tensor(f.fileno(), entry, start) for key, entry in header.items()}


def read_tensor(fd: int, entry: dict, start: int, part: int = 0, parts: int = 1):
    """One tensor of an open safetensors file (`fd`; `entry` from its header, `start` where its data begins), or
    block `part` of its `parts` equal blocks of rows, read into memory of its own."""
    import torch

    dtype = getattr(torch, DTYPES[entry["dtype"]][1])
    shape = list(entry["shape"])
    first, last = entry["data_offsets"]
    size = (last - first) // parts
    if parts > 1:
        shape[0] //= parts
    out = torch.empty(shape, dtype=dtype)
    if size == 0:
        return out
    view, done = memoryview(out.view(-1).view(torch.uint8).numpy()), 0  # read straight into the tensor
    while done < size:
        got = os.preadv(fd, [view[done:]], start + first + part * size + done)
        if got == 0:
            raise UnsupportedFile("the file ends inside the tensor's data (truncated?); download it again.")
        done += got
    return out
