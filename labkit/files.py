"""Writing files the way labkit does: whole or not at all, with the permissions of any saved file."""

import os
import uuid
from pathlib import Path

FILE_MODE = 0o644  # what a written file gets (safetensors and mkstemp would leave 0600: unreadable to others)


def save_safetensors(tensors: dict, path, metadata: dict | None = None) -> Path:
    """Write `tensors` as a safetensors file at `path`, atomically (see `write_atomic`). Returns the path."""
    from safetensors.torch import save_file

    return write_atomic(path, lambda temp: save_file(tensors, str(temp), metadata=metadata))


def save_text(text: str, path) -> Path:
    """Write `text` (UTF-8) at `path`, atomically (see `write_atomic`). Returns the path."""
    return write_atomic(path, lambda temp: temp.write_text(text, encoding="utf-8"))


def write_atomic(path, write) -> Path:
    """Call `write(temp)` on a temporary path in `path`'s folder, give the file FILE_MODE and rename it into
    place, so a failure never leaves half a file. Returns the path."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")  # same folder: the rename is atomic
    try:
        write(temp)
        os.chmod(temp, FILE_MODE)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path
