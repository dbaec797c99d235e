"""Writing files the way labkit does: whole or not at all, with the permissions of any saved file."""

import os
import uuid
from pathlib import Path

FILE_MODE = 0o644  # what a written file gets (safetensors and mkstemp would leave 0600: unreadable to others)


def save_safetensors(tensors: dict, path, metadata: dict | None = None) -> Path:
    """Write `tensors` to `path` through a temporary file in the same folder, renamed into place, so a failure
    never leaves half a file; the file gets FILE_MODE. Returns the path."""
    from safetensors.torch import save_file

    path = Path(path)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")  # same folder: the rename is atomic
    try:
        save_file(tensors, str(temp), metadata=metadata)
        os.chmod(temp, FILE_MODE)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path
