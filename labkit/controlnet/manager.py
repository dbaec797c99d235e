"""ControlNets (`lab.controlnets`): the ControlNet files a Lab can use, loaded on first use and kept, each checked
against the Lab's family; and the preparation of a run's units (their control maps and the UNet hook)."""

from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput
from . import files, loading


@dataclass(frozen=True)
class ControlNetInfo:
    """A loaded ControlNet: its name (the file's stem, as A1111 lists it), file, family, A1111's hash (the legacy
    8-digit "model hash" its infotext writes in brackets) and the layout the file used."""

    name: str
    path: Path
    family: str
    hash: str | None
    layout: str  # "original", "diffusers" or "folder"

    @property
    def title(self) -> str:
        """"name [hash]", as A1111's infotext names the model."""
        return f"{self.name} [{self.hash}]" if self.hash else self.name


class ControlNets:
    """The Lab's ControlNets: `load(source)` by path or name (on `search_paths`), `names()` of what the search
    paths hold, `loaded` {name: (model, info)}."""

    def __init__(self, lab):
        self.lab = lab
        self.search_paths = files.default_search_paths()
        self.loaded = {}

    def names(self) -> list[str]:
        """The ControlNets on the search paths, by name (any family: `load` checks it)."""
        return sorted(files.names(self.search_paths))

    def load(self, source, name: str | None = None) -> ControlNetInfo:
        """Load a ControlNet (a .safetensors file in either layout, a diffusers folder, or a name on the search
        paths) for this Lab's family; again by the same name returns the loaded one."""
        from ..hashes import autov1
        from ..header import PICKLE_SUFFIXES
        from ..recipes.infotext import split_title

        base, file_hash = split_title(str(source))  # a recipe's "name [hash]"
        if name is None and base in self.loaded:
            return self.loaded[base][1]
        path = Path(base).expanduser()
        if path.suffix.lower() in PICKLE_SUFFIXES and path.exists():
            from ..header import read_header

            read_header(path)  # UnsafeFile, with the full explanation
        located = None if path.exists() else files.locate(base, file_hash, self.search_paths)
        path = located or files.find(base, self.search_paths)
        device, dtype = self.lab.device, self.lab.dtype
        if path.is_dir():
            model = loading.load_folder(path, self.lab.family, device=device, dtype=dtype)
            info = ControlNetInfo(name or path.name, path, self.lab.family, None, "folder")
        else:
            state, layout = loading.read(path, self.lab.family)
            model = loading.build(state, self.lab.family_record.config, path.name, device=device, dtype=dtype)
            info = ControlNetInfo(name or path.stem, path, self.lab.family, autov1(path), layout)
        self.loaded[info.name] = (model, info)
        return info

    def get(self, source):
        """(model, info) of a unit's `model` (a name, a "name [hash]" title or a path), loading it if needed."""
        info = self.load(source)
        return self.loaded[info.name]

    def unload(self, name: str) -> None:
        if name not in self.loaded:
            raise BadInput(f"No ControlNet named {name!r} is loaded; loaded: {', '.join(self.loaded) or 'none'}.")
        del self.loaded[name]

    def __repr__(self) -> str:
        return f"ControlNets(loaded={list(self.loaded)}, search_paths={[str(p) for p in self.search_paths]})"
