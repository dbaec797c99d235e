"""LoraManager (`lab.loras`): load LoRA files, toggle them, weigh them, and fold them into the weights.

Generation runs on folded weights (W + weight * dW for every active LoRA, as A1111 does): a folded step costs
what a plain step costs, where diffusers' unfused PEFT adapters make each UNet step 2-4x slower. The manager
rebuilds a touched weight from its original whenever the LoRAs on it change, so turning LoRAs off gives back the
original weights bit for bit. The original is read back from the model's file (`labkit.originals`: no copy in
memory) once it is checked to hold the same bits; otherwise (a diffusers folder, a pickle, weights changed since
opening) a copy is kept on `backup_device` (the CPU by default, as A1111 does, so a GPU keeps its memory).

Toggles and weights only record what is wanted; `apply()` (the Lab calls it before each generation) makes the
weights match, touching only the layers whose LoRAs changed, and returns at once when nothing did.
"""

import math
from collections import namedtuple
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .. import checks
from ..errors import BadInput, LoraMismatch, UnsupportedFile
from ..families import FAMILIES
from . import formats
from .files import LoraFiles, read_tensors
from .folding import FoldedWeights

MIN_COVERAGE = 0.9  # below this fraction of matched modules, strict loading refuses
# file kind (labkit.inspect) -> what to do with such a file instead of loading it as a LoRA
KIND_HINTS = {
    "checkpoint": "it is a whole model; open it with labkit.open(path)",
    "embedding": "it is a textual-inversion embedding; use lab.load_embedding(path, token)",
    "vae": "it is a VAE; pass it as labkit.open(model, vae=path)",
    "controlnet": "it is a ControlNet, which labkit does not run",
    "unknown": "its keys match no LoRA format labkit reads (kohya, LoCon, LoHa, LoKr, diffusers, PEFT)",
}

Applied = namedtuple("Applied", "name hash te_weight unet_weight targets")
AB = namedtuple("AB", "without with_lora diff")


@dataclass(frozen=True)
class LoraInfo:
    """A loaded LoRA: what the file is, how much of it found a layer, and its current weights.

    coverage: the fraction of the file's modules that patch a layer of this model; `missed` names the others
    (`why_missed` says why). weights: (te_weight, unet_weight). hash: A1111's "Lora hashes" entry (AutoV3).
    """

    name: str
    path: Path
    family: str | None
    format: str
    rank: int | None
    alpha: float | None
    coverage: float
    missed: tuple
    targets: tuple
    weights: tuple
    enabled: bool = True
    n_modules: int = 0
    why_missed: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def hash(self) -> str:
        from ..hashes import autov3

        return autov3(self.path)


@dataclass(eq=False)
class _Lora:
    name: str
    path: Path
    file: object  # detect.FileInfo
    patches: list  # deltas.Patch, one per matched module
    missed: dict  # module -> why it found no layer
    te_weight: float
    unet_weight: float
    enabled: bool = True
    _hash: str | None = None

    @property
    def hash(self) -> str:
        """AutoV3 of the file, read once (the file may be moved or deleted after loading)."""
        if self._hash is None:
            from ..hashes import autov3

            self._hash = autov3(self.path)
        return self._hash

    @property
    def coverage(self) -> float:
        total = len(self.patches) + len(self.missed)
        return len(self.patches) / total if total else 0.0

    def info(self) -> LoraInfo:
        lora = self.file.lora
        fmt = lora.format + ("+dora" if any(p.magnitude is not None for p in self.patches) else "")
        return LoraInfo(name=self.name, path=self.path, family=self.file.family, format=fmt, rank=lora.rank,
                        alpha=lora.alpha, coverage=self.coverage, missed=tuple(self.missed),
                        targets=targets(self.patches), weights=(self.te_weight, self.unet_weight),
                        enabled=self.enabled, n_modules=len(self.patches) + len(self.missed),
                        why_missed=dict(self.missed))


def targets(patches) -> tuple:
    """The components a list of patches touches, in model order."""
    touched = {p.target.component for p in patches}
    return tuple(c for c in ("unet", "text_encoder", "text_encoder_2") if c in touched)


def weight_for(component: str, te_weight: float, unet_weight: float) -> float:
    return unet_weight if component == "unet" else te_weight


def _number(value, what: str, text_ok: bool = False) -> float:
    """A LoRA weight: a finite number (from a prompt tag, also its text); BadInput otherwise (True is not 1)."""
    if text_ok and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if not checks.is_real(value):
        raise BadInput(f"{checks.described(what, value)}; give a number: LoRA weights are usually between -2 and 2.")
    number = float(value)
    if not math.isfinite(number):
        raise BadInput(f"{what}={checks.shown(value)} is not a finite number; LoRA weights are usually between -2 "
                       f"and 2.")
    return number


class LoraManager:
    """The LoRAs of one Lab. `lab.loras.load(path, weight=0.8)`; `set_weight`, `enable`, `disable`, `remove`;
    `active`; `<lora:name:w>` tags through `for_call`. See the module docstring for how folding works."""

    def __init__(self, lab, search_paths=None, backup_device="cpu"):
        self.lab = lab
        self.files = LoraFiles(search_paths)
        self._loras = {}  # name -> _Lora, in loading order
        self._prompt_loras = {}  # name -> _Lora read for a <lora:...> tag (not listed in `active`)
        self._call = {}  # name -> (_Lora, te_weight, unet_weight) for the current generation's tags
        self._tables = None  # {component: {flat name: Target}}, built on first load
        self._weights = FoldedWeights(lab, backup_device)  # the changed weights' originals
        self._folded = {}  # Target -> ((Patch, weight), ...) now in the weight
        self._state = ()  # the desired state that was last applied
        self._applied = []  # [(_Lora, te_weight, unet_weight)] folded now

    # ---- loading ---------------------------------------------------------------------------------------
    def load(self, path, name=None, weight=1.0, te_weight=None, strict=True) -> LoraInfo:
        """Load a LoRA file (enabled at `weight`; `te_weight` for the text encoders, default `weight`).

        Raises LoraMismatch for a LoRA of another model family, or (strict) one whose modules find a layer in
        fewer than 90 % of cases; UnsupportedFile for a file that is not a LoRA or is corrupt."""
        checks.path("path", path)
        if name is not None and not checks.text("name", name).strip():
            raise BadInput("name= is empty; give the LoRA a name, or leave name=None to use the file's.")
        checks.flag("strict", strict)
        path = self._resolve(path)
        name = name or path.stem
        if name in self._loras:
            raise BadInput(f"A LoRA named {name!r} is already loaded; pass name='...' to load it under another "
                           f"name, or lab.loras.remove({name!r}) first.")
        unet_weight = _number(weight, "weight")
        te = unet_weight if te_weight is None else _number(te_weight, "te_weight")
        lora = self._read(path, name, te, unet_weight, strict)
        self._loras[name] = lora
        return lora.info()

    def _resolve(self, path) -> Path:
        """The file: `path` as given, or a bare name looked up on the search paths."""
        given = Path(path)
        if given.exists() or given.suffix or len(given.parts) > 1:
            return given  # a missing file gets inspect()'s own error, which names the working directory
        return self.find(str(path))

    def _read(self, path, name, te_weight, unet_weight, strict) -> _Lora:
        file = self._check_file(path)
        tensors = read_tensors(path)
        patches, missed = self._patches(tensors, file.metadata)
        lora = _Lora(name, path, file, patches, missed, te_weight, unet_weight)
        if strict and lora.coverage < MIN_COVERAGE:
            raise LoraMismatch(_coverage_message(lora, self.lab))
        return lora

    def _check_file(self, path):
        """The file's FileInfo, once it is known to be a LoRA of this Lab's family (read from its header)."""
        from ..detect import inspect

        file = inspect(path)
        if file.kind != "lora":
            hint = KIND_HINTS.get(file.kind, KIND_HINTS["unknown"])
            raise UnsupportedFile(f"{Path(path).name} is not a LoRA: {hint}.")
        if file.family is not None and file.family != self.lab.family:
            raise LoraMismatch(_family_message(Path(path).name, file.family, self.lab))
        return file

    def _patches(self, tensors, metadata) -> tuple[list, dict]:
        """([Patch per matched module], {module or key: why it matched nothing})."""
        from .targets import target_table

        if self._tables is None:
            self._tables = target_table(self.lab)
        modules, unknown = formats.group(tensors)
        peft = formats.peft_configs(metadata)
        patches, missed = [], {key: "unknown key format" for key in unknown}
        for module, parts in modules.items():
            if set(parts) <= set(formats.EXTRA_PARTS):
                continue  # an alpha without its module's weights
            found = self._patch(module, parts, tensors, peft)
            if isinstance(found, str):
                missed[module] = found
            else:
                patches.append(found)
        return patches, missed

    def _patch(self, module, parts, tensors, peft):
        """The Patch for one module of the file, or a string saying why it fits no layer."""
        import torch

        from .deltas import Patch, as_matrix, dora_magnitude, product_shape

        kind = formats.kind(parts)
        if kind is None:
            return f"incomplete or mixed parts {sorted(parts)}"
        routed = formats.route(module, self.lab.layout)
        if routed is None:
            return f"names no component of a {self.lab.family} model"
        component, flat_name = routed
        target = self._tables.get(component, {}).get(flat_name)
        if target is None:
            return f"no layer {flat_name!r} in the {component}"
        shapes = {p: tuple(tensors[k].shape) for p, k in parts.items() if p in formats.KIND_OF_PART}
        product, weight = product_shape(kind, shapes), tuple(target.weight.shape)
        if product is None or as_matrix(product) != as_matrix(weight):
            return f"its {kind} product {product} does not fit the layer's weight {weight}"
        magnitude, per_output = dora_magnitude(parts, tensors, weight)
        if magnitude is False:
            return f"its DoRA magnitude does not fit the layer's weight {weight}"
        config = peft.get(component, {})
        alpha = float(tensors[parts["alpha"]]) if "alpha" in parts else formats.peft_alpha(config, module)
        device = target.weight.device  # kept in the file's precision (half of float32 for most files); summed in
        kept = (torch.float16, torch.bfloat16, torch.float32)  # float32 when folded (labkit.lora.deltas)
        held = {p: tensors[parts[p]] for p in shapes}
        held = {p: t.to(device, t.dtype if t.dtype in kept else torch.float32) for p, t in held.items()}
        return Patch(target, kind, held, formats.scale(kind, shapes, alpha, bool(config.get("use_rslora"))),
                     None if magnitude is None else magnitude.to(device, torch.float32), per_output)

    # ---- search paths (labkit.lora.files) ---------------------------------------------------------------
    @property
    def search_paths(self) -> list:
        """The folders `<lora:name>` tags are looked up in, in order (subfolders included)."""
        return self.files.paths

    @search_paths.setter
    def search_paths(self, paths) -> None:
        self.files.paths = list(paths)

    def find(self, name: str) -> Path:
        """The file of `<lora:name>` on the search paths (or linked to the name); BadInput when there is none."""
        return self.files.find(name)

    def locate(self, name: str, file_hash: str | None = None) -> Path | None:
        """A recipe's LoRA file: a loaded LoRA of that name, else one on the search paths, else (by its A1111
        hash, AutoV3) a loaded or searchable file with that hash; None when none is found."""
        if name in self._loras:
            return self._loras[name].path
        found = self.files.locate(name, file_hash)
        if found is None and file_hash:
            found = next((lora.path for lora in self._loras.values()
                          if lora.hash.lower().startswith(file_hash.lower())), None)
        return found

    def link(self, name: str, path) -> None:
        """Make `<lora:name>` tags use the file at `path` (a recipe's LoRA found under another file name)."""
        self.files.link(name, path)

    # ---- toggles and weights ---------------------------------------------------------------------------
    def _get(self, name) -> _Lora:
        checks.text("name", name)
        if name not in self._loras:
            loaded = ", ".join(self._loras) or "none"
            raise BadInput(f"No LoRA named {name!r} is loaded (loaded: {loaded}); lab.loras.load(path) first."
                           + checks.did_you_mean(name, self._loras))
        return self._loras[name]

    def set_weight(self, name, weight, te_weight=None) -> None:
        """Set a LoRA's UNet weight and text-encoder weight (default: the same); takes effect at the next apply."""
        lora = self._get(name)
        lora.unet_weight = _number(weight, "weight")
        lora.te_weight = lora.unet_weight if te_weight is None else _number(te_weight, "te_weight")

    def enable(self, name) -> None:
        self._get(name).enabled = True

    def disable(self, name) -> None:
        self._get(name).enabled = False

    def remove(self, name) -> None:
        """Forget a LoRA; its change to the weights is undone at the next apply (or unfuse)."""
        del self._loras[self._get(name).name]

    @property
    def active(self) -> dict:
        """{name: (te_weight, unet_weight)} of the enabled LoRAs."""
        return {name: (lora.te_weight, lora.unet_weight) for name, lora in self._loras.items() if lora.enabled}

    @property
    def backups(self) -> int:
        """How many copies of original weights are held to restore them bit for bit (weights the model's file
        gives back need none: `from_file` counts those)."""
        return len(self._weights.backups)

    @property
    def copies_bytes(self) -> int:
        """Bytes the copies of original weights take (see `backups`)."""
        return sum(t.numel() * t.element_size() for t in self._weights.backups.values())

    @property
    def from_file(self) -> int:
        """How many changed weights will be given back from the model's file instead of a copy."""
        return len(self._weights.from_file)

    @property
    def loaded(self) -> dict:
        """{name: LoraInfo} of every loaded LoRA, enabled or not."""
        return {name: lora.info() for name, lora in self._loras.items()}

    def info(self, name) -> LoraInfo:
        return self._get(name).info()

    # ---- folding ---------------------------------------------------------------------------------------
    def _desired(self) -> list:
        """[(_Lora, te_weight, unet_weight)]: the enabled LoRAs, then those named by the current call's tags."""
        wanted = [(lora, lora.te_weight, lora.unet_weight) for name, lora in self._loras.items()
                  if lora.enabled and name not in self._call]
        return wanted + list(self._call.values())

    def apply(self) -> bool:
        """Make the weights hold exactly the active LoRAs; returns whether any weight changed.

        Only layers whose (LoRA, weight) list changed are rebuilt, each from its original copy, so the same
        state always gives the same bits; with nothing changed this returns at once."""
        desired = self._desired()
        state = tuple(desired)  # compared by LoRA identity (a reloaded file is another LoRA) and weights
        if state == self._state:
            return False
        plan = {}  # Target -> [(Patch, weight)]
        for lora, te, unet in desired:
            for patch in lora.patches:
                weight = weight_for(patch.target.component, te, unet)
                if weight:
                    plan.setdefault(patch.target, []).append((patch, weight))
        plan = {target: tuple(contributions) for target, contributions in plan.items()}
        changed = [t for t in {**self._folded, **plan} if plan.get(t, ()) != self._folded.get(t, ())]
        try:
            for target in changed:
                self._fold(target, plan.get(target, ()))
        except BaseException:  # an interrupt mid-fold: every weight back as it was (self._folded is unchanged)
            for target in changed:
                self._fold(target, self._folded.get(target, ()))
            raise
        self._folded, self._state, self._applied = plan, state, desired
        return bool(changed)

    def state(self) -> tuple:
        """What is folded into the weights now, for `restore` (an opaque value)."""
        return self._folded, self._state, self._applied

    def restore(self, state: tuple) -> None:
        """Fold the weights back to a `state()` taken earlier: what a call interrupted half-way undoes."""
        folded = state[0]
        for target in {**self._folded, **folded}:
            if self._folded.get(target, ()) != folded.get(target, ()):
                self._fold(target, folded.get(target, ()))
        self._folded, self._state, self._applied = state

    def _fold(self, target, contributions) -> None:
        self._weights.fold(target, contributions)

    def fuse(self) -> list:
        """Fold the active LoRAs into the weights now (generation does it anyway); returns `applied()`.

        Useful before calling `lab.pipe` yourself or saving the model with its LoRAs baked in."""
        self.apply()
        return self.applied()

    def unfuse(self) -> None:
        """Give every touched weight back its original value now (bit-exact) and drop the copies. LoRAs stay
        loaded and enabled: the next generation folds them again."""
        for target in list(self._folded):
            self._fold(target, ())
        self._folded, self._state, self._applied = {}, (), []

    def applied(self) -> list:
        """[Applied(name, hash, te_weight, unet_weight, targets)] for the LoRAs folded in now: what a Result
        records as the LoRAs of this stage (and A1111's "Lora hashes")."""
        out = []
        for lora, te, unet in self._applied:
            touched = targets(p for p in lora.patches if weight_for(p.target.component, te, unet))
            if touched:
                out.append(Applied(lora.name, lora.hash, te, unet, touched))
        return out

    # ---- prompt tags -----------------------------------------------------------------------------------
    @contextmanager
    def for_call(self, tags):
        """Within the block, the LoRAs of `<lora:name:te_w:unet_w>` tags are active at the tags' weights (a
        tag overrides the toggles of a loaded LoRA; a name not loaded is read from the search paths and kept
        for later calls). Yields `applied()`. The weights stay folded afterwards until the next apply, so the
        same prompt again costs nothing."""
        call = {}
        for tag in tags:
            te = 1.0 if tag.te_weight is None else _number(tag.te_weight, f"<lora:{tag.name}> weight", text_ok=True)
            unet = te if tag.unet_weight is None else _number(tag.unet_weight, f"<lora:{tag.name}> unet weight",
                                                              text_ok=True)
            call[tag.name] = (self._loras.get(tag.name) or self._prompt_lora(tag.name), te, unet)
        outer, self._call = self._call, call
        try:
            self.apply()
            yield self.applied()
        finally:
            self._call = outer

    def _prompt_lora(self, name) -> _Lora:
        if name not in self._prompt_loras:
            self._prompt_loras[name] = self._read(self.find(name), name, 1.0, 1.0, strict=True)
        return self._prompt_loras[name]

    # ---- seeing the effect (labkit.lora.view) --------------------------------------------------------------
    def effect(self, name) -> dict:
        """{block: ||dW|| / ||W||} at the LoRA's current weights, blocks named as A1111's LoRA Block Weight
        does (TE/TE1/TE2, IN00.., M00, OUT00.., BASE); the norms are over all touched weights of a block."""
        from .view import block_effect

        lora = self._get(name)
        return block_effect(lora.patches, lora.te_weight, lora.unet_weight, self._weights.original)

    def plot_effect(self, names=None):
        """A heat map (matplotlib Figure) of `effect` for the named (default: all loaded) LoRAs."""
        from .view import effect_heatmap

        return effect_heatmap({name: self.effect(name) for name in (names or list(self._loras))})

    def ab(self, name, prompt, seed, gain=4.0, **settings) -> AB:
        """The same txt2img with the LoRA off and on: AB(without, with_lora, diff), diff = |a - b| * gain."""
        from ..noise import resolve_seed
        from .view import difference

        lora, seed = self._get(name), resolve_seed(seed)
        was, images = lora.enabled, []
        try:
            for on in (False, True):
                lora.enabled = on
                self.apply()  # this manager's LoRAs (lab.loras, or one made apart) folded before the run
                images.append(self.lab.txt2img(prompt, seed=seed, **settings).image)
        finally:
            lora.enabled = was
        return AB(*images, difference(*images, gain))

    def __repr__(self) -> str:
        rows = [f"  {i.name}: {'on ' if i.enabled else 'off'} te={i.weights[0]:g} unet={i.weights[1]:g} "
                f"{i.format} rank {i.rank} coverage {i.coverage:.0%}" for i in self.loaded.values()]
        return "\n".join([f"<LoraManager of {self.lab.family}: {len(rows)} loaded>", *rows])


def _display(family: str) -> str:
    return FAMILIES[family].display if family in FAMILIES else family


def _family_message(filename, family, lab) -> str:
    fix = (f"Load it into a {family} model (labkit.open(...) of a {_display(family)} checkpoint), "
           f"or use a LoRA trained for {lab.family}.")
    if lab.layout == "refiner":
        fix = ("LoRAs apply to the SDXL base, not to the refiner (its UNet has other widths): load it with the "
               "base Lab's lab.loras; the refiner then refines without it.")
    return (f"{filename} is a {family} LoRA ({_display(family)}) but this Lab is a {lab.family} "
            f"model ({_display(lab.family)}): its layers have other widths, so it cannot "
            f"change anything here. {fix}")


def _coverage_message(lora, lab) -> str:
    examples = "; ".join(f"{m}: {why}" for m, why in list(lora.missed.items())[:3])
    total = len(lora.patches) + len(lora.missed)
    return (f"{lora.path.name}: only {len(lora.patches)} of its {total} modules ({lora.coverage:.0%}) found a layer "
            f"of this {lab.family} model (e.g. {examples}). It was probably made for another model or by a tool "
            f"whose naming labkit does not know. Pass strict=False to load it anyway; LoraInfo.missed lists "
            f"what is skipped.")
