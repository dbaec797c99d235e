"""Writing files the way labkit does: whole or not at all, with the permissions of any saved file, and errors that
say what to do."""

import errno
import math
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import BadInput
from .header import DTYPES

SAFETENSORS_DTYPES = {name: code for code, (_, name) in DTYPES.items()}  # torch dtype name -> the format's code
FILE_MODE = 0o644  # what a written file gets (safetensors and mkstemp would leave 0600: unreadable to others)
# OS error -> what the user can do about it
WRITE_FIXES = {
    errno.ENOSPC: "The disk is full: free some space or write to another disk.",
    errno.EDQUOT: "The disk quota is used up: free some space or write to another disk.",
    errno.EACCES: "Choose a folder you can write to.",
    errno.EPERM: "Choose a folder you can write to.",
    errno.EROFS: "The file system is read-only: choose another folder.",
}


def save_safetensors(tensors: dict, path, metadata: dict | None = None) -> Path:
    """Write `tensors` as a safetensors file at `path`, atomically (see `write_atomic`). Returns the path."""
    from safetensors.torch import save_file

    return write_atomic(path, lambda temp: save_file(tensors, str(temp), metadata=metadata))


@dataclass(frozen=True)
class Entry:
    """One tensor of a file written by `save_safetensors_streamed`: its key, torch dtype and shape, and `make()`
    that builds it when its turn comes."""

    key: str
    dtype: object
    shape: tuple
    make: Callable


def save_safetensors_streamed(entries: list, path, metadata: dict | None = None, overwrite: bool = True) -> Path:
    """Write a safetensors file one tensor at a time: each `Entry.make()` is called, written and dropped in turn,
    so the memory needed is the largest tensor, not the file (the safetensors library wants them all at once).
    Atomic like `write_atomic`. The layout is the format's own: an 8-byte little-endian header length, the JSON
    header padded with spaces to 8 bytes, then the tensors' bytes in the header's order."""
    import json
    import struct

    header, offset = {}, 0
    if metadata:
        header["__metadata__"] = dict(metadata)
    for entry in entries:
        size = math.prod(entry.shape) * entry.dtype.itemsize
        header[entry.key] = {"dtype": SAFETENSORS_DTYPES[str(entry.dtype).removeprefix("torch.")],
                             "shape": list(entry.shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)

    def write(temp):
        with open(temp, "wb") as out:
            out.write(struct.pack("<Q", len(text)) + text)
            for entry in entries:
                out.write(tensor_bytes(entry.make(), entry))

    return write_atomic(path, write, overwrite=overwrite)


def tensor_bytes(tensor, entry: Entry) -> memoryview:
    """A tensor's bytes on the CPU, in C order, once it is what its entry announced."""
    import torch

    if tuple(tensor.shape) != tuple(entry.shape) or tensor.dtype != entry.dtype:
        raise ValueError(f"{entry.key}: made {tuple(tensor.shape)} {tensor.dtype}, announced {entry.shape} "
                         f"{entry.dtype}")
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy())


def save_text(text: str, path) -> Path:
    """Write `text` (UTF-8) at `path`, atomically (see `write_atomic`). Returns the path."""
    return write_atomic(path, lambda temp: temp.write_text(text, encoding="utf-8"))


def save_json(data, path, sort_keys: bool = False) -> Path:
    """Write `data` as indented JSON with a final newline at `path`, atomically. Returns the path."""
    import json

    return save_text(json.dumps(data, indent=2, sort_keys=sort_keys) + "\n", path)


def write_atomic(path, write, overwrite: bool = True) -> Path:
    """Call `write(temp)` on a temporary path in `path`'s folder (made if missing), give the file FILE_MODE and
    move it into place, so a failure never leaves half a file. Returns the path.

    Without `overwrite`, an existing file is never replaced, not even one that appeared while `write` ran.
    BadInput, naming the fix, for a folder that cannot be written, a full disk and the like; errors `write` raises
    without an OS error number (a library's own complaint) pass through unchanged.
    """
    path = Path(path)
    folder = path.parent
    temp = folder / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"  # same folder: the rename is atomic
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))
    except OSError as error:
        raise BadInput(f"Cannot write into the folder {folder}: {error.strerror or error}. "
                       "Choose a folder you can write to.") from None
    try:
        write(temp)
        os.chmod(temp, FILE_MODE)
        publish(temp, path, overwrite)
    except OSError as error:
        if error.errno is None:
            raise
        fix = WRITE_FIXES.get(error.errno, "")
        raise BadInput(f"Could not write {path}: {error.strerror or error}. {fix}".strip()) from None
    finally:
        temp.unlink(missing_ok=True)
    return path


def publish(temp: Path, path: Path, overwrite: bool) -> None:
    """Move the finished `temp` to `path`. Without `overwrite` it is hard-linked, which fails if the name exists
    (a check first and a rename after would replace a file made in between); where the file system has no hard
    links, a last check and a rename."""
    if overwrite:
        os.replace(temp, path)
        return
    try:
        os.link(temp, path)
    except FileExistsError:
        raise BadInput(exists_message(path)) from None
    except OSError:  # a file system without hard links
        if path.exists():
            raise BadInput(exists_message(path)) from None
        os.replace(temp, path)


def exists_message(path) -> str:
    """What labkit says when it will not replace a file."""
    return f"{path} already exists; pick another name or pass overwrite=True to replace it."
