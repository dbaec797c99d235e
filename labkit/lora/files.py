"""Where LoRA files are found: labkit's shipped LoRAs, A1111's ./models/Lora and $LABKIT_LORA_PATH, by name (as
`<lora:name>` tags name them) or by A1111's hash (as recipes' "Lora hashes" name them)."""

import os
from pathlib import Path

from ..checks import did_you_mean
from ..errors import BadInput, UnsupportedFile

ENV_PATH = "LABKIT_LORA_PATH"  # extra LoRA folders, separated by os.pathsep
PACKAGE_LORAS = Path(__file__).parents[1] / "toy" / "loras"


def default_search_paths() -> list:
    """labkit's shipped LoRAs, ./models/Lora (A1111's folder) and the folders in $LABKIT_LORA_PATH."""
    extra = [Path(p) for p in os.environ.get(ENV_PATH, "").split(os.pathsep) if p]
    return [PACKAGE_LORAS, Path.cwd() / "models" / "Lora", *extra]


class LoraFiles:
    """The LoRA folders of a Lab (`paths`, searched in order, subfolders included) and names linked to files."""

    def __init__(self, paths=None):
        self.paths = list(paths) if paths is not None else default_search_paths()
        self.links = {}  # name -> file a <lora:name> tag uses

    def names(self) -> dict:
        """{name: path} of every .safetensors file in the folders (the first, shallowest file of a name wins)."""
        found = {}
        for folder in (Path(p) for p in self.paths if Path(p).is_dir()):
            for path in sorted(folder.rglob("*.safetensors"), key=lambda p: (len(p.parts), str(p))):
                found.setdefault(path.stem, path)
        return {**found, **self.links}

    def find(self, name: str) -> Path:
        """The file of `<lora:name>`; BadInput naming the folders searched when there is none."""
        found = self.names().get(name)
        if found is not None:
            return found
        where = "\n  ".join(str(p) for p in self.paths)
        raise BadInput(f"No LoRA named {name!r} in the search paths:\n  {where}\nPut {name}.safetensors in one of "
                       f"them, add a folder to lab.loras.search_paths (or ${ENV_PATH}), or load it by path."
                       + did_you_mean(name, sorted(self.names())))

    def locate(self, name: str, file_hash: str | None = None) -> Path | None:
        """The file a recipe's LoRA is: by `name`, else the file whose AutoV3 hash starts with `file_hash` (A1111's
        "Lora hashes" entry); None when neither is there."""
        from ..hashes import autov3

        names = self.names()
        if name in names:
            return names[name]
        hits = [path for path in names.values() if file_hash and autov3(path).lower().startswith(file_hash.lower())]
        return hits[0] if hits else None

    def link(self, name: str, path) -> None:
        """Make `<lora:name>` tags use the file at `path` (a recipe's LoRA found under another file name)."""
        path = Path(path)
        if not path.is_file():
            raise BadInput(f"{path}: no such LoRA file.")
        self.links[name] = path


def read_tensors(path) -> dict:
    """All tensors of a LoRA file on the CPU; UnsupportedFile when the data cannot be read or is not finite."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise UnsupportedFile(f"{path} could not be read ({e}): download it again; an interrupted download is "
                              "the usual cause.") from None
    bad = sorted(k for k, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all())
    if bad:
        raise UnsupportedFile(f"{path} holds NaN or infinite values in {len(bad)} tensors (e.g. {bad[0]!r}): the "
                              "file is corrupt or was saved from a diverged training run.")
    return tensors
