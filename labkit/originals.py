"""A model's original weights, read back from the files it was opened from.

Folding a LoRA changes weights in place; giving them back bit for bit used to mean keeping a copy of each one,
which doubles the memory a LoRA touches (11.7 GB for a full SDXL LoRA in float32). The file already holds those
weights. `WeightFiles.read` reads one back on demand, by its byte offsets (no memory map, so nothing of the file
stays resident), through the same key map the single-file writer uses (`export.places`), cast to the weight's
dtype as loading cast it. The LoRA manager uses a read only after checking, at the first fold, that it is
bit-identical to the weight in the model; a weight changed since opening, or one the files do not hold as
expected, keeps a copy as before.
"""

import os
from pathlib import Path

from .errors import BadInput, UnsupportedFile
from .header import read_header_at, read_tensor


class WeightFiles:
    """The safetensors files a Lab's weights came from: `parts` [(path, key prefix)] (one file for a download,
    several for the embedded models), holding the single-file `layout` ("sd1", "sdxl"...)."""

    def __init__(self, parts, layout: str):
        self.parts = [(Path(path), prefix) for path, prefix in parts]
        self.layout = layout
        self._places = None  # {component: {diffusers key: Place}}, from the Lab's components on first use
        self._index = None  # {file key: (path, header entry, data start)}
        self._stamps = {}  # path -> stamp() when its header was read

    def read(self, components: dict, component: str, key: str, like):
        """Weight `key` of `component` as the file holds it, shaped, typed and placed like `like`; None when the
        files do not hold it, or a file changed since it was first read."""
        place = self._find_place(components, component, key)
        found = None if place is None else self._find_entry(place.key)
        if found is None or stamp(found[0]) != self._stamps.get(found[0]):
            return None
        path, entry, start = found
        try:
            with open(path, "rb") as f:
                tensor = read_tensor(f.fileno(), entry, start, place.part, place.parts)
        except (OSError, UnsupportedFile):
            return None
        from .export import from_file

        tensor = from_file(tensor, place)
        if tuple(tensor.shape) != tuple(like.shape):
            return None
        return tensor.to(device=like.device, dtype=like.dtype)

    def _find_place(self, components, component, key):
        if self._places is None:
            from .export import places

            try:
                self._places = places(components, self.layout)
            except BadInput:  # components the layout cannot describe (swapped by hand): nothing is read back
                self._places = {}
        return self._places.get(component, {}).get(key)

    def _find_entry(self, file_key):
        if self._index is None:
            self._index = {}
            for path, prefix in self.parts:
                try:
                    self._stamps[path] = stamp(path)
                    header, _, start = read_header_at(path)
                except Exception:  # noqa: BLE001 - a file moved or changed since opening: those weights keep copies
                    continue
                self._index.update({prefix + key: (path, entry, start) for key, entry in header.items()})
        return self._index.get(file_key)


def stamp(path: Path):
    """What changes when a file is rewritten or replaced: (inode, size, modification time); None if it is gone."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_ino, found.st_size, found.st_mtime_ns
