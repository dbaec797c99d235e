"""Model families: one frozen record per family, the single source of every per-family fact.

A family is an architecture labkit runs: SD 1.x, SD 2.x, SDXL, the SDXL refiner, and labkit's embedded toy
twins of them. Its record says how its files are recognised (single-file layout and the UNet's cross-attention
width), how it runs (pipeline layout), and the numbers other modules need without loading a model. The
architecture itself (blocks, layers, channels) lives in the family's config folder, `labkit/configs/<family>/`;
a test checks that the records and the configs agree. Adding a family is one record plus its config folder.

Other modules never restate these facts: they read them here, or build their lookup tables from `FAMILIES`.
Importing this module is light (no torch).
"""

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from .errors import UnsupportedFile

CONFIGS = Path(__file__).parent / "configs"
MODES = ("txt2img", "img2img", "inpaint")


@dataclass(frozen=True)
class Layout:
    """How a pipeline is put together: its text encoders (with A1111's LoRA block label for each), the one whose
    pooled output conditions the UNet (SDXL's second), and the diffusers pipeline class per mode."""

    name: str
    text_blocks: MappingProxyType  # text-encoder component -> block label ("TE", "TE1", "TE2")
    pooled: str | None
    pipelines: MappingProxyType  # mode -> diffusers pipeline class name; a mode not listed cannot run

    @property
    def text_encoders(self) -> tuple[str, ...]:
        return tuple(self.text_blocks)


LAYOUTS = MappingProxyType({
    "sd": Layout("sd", MappingProxyType({"text_encoder": "TE"}), None, MappingProxyType({
        "txt2img": "StableDiffusionPipeline", "img2img": "StableDiffusionImg2ImgPipeline",
        "inpaint": "StableDiffusionInpaintPipeline"})),
    "xl": Layout("xl", MappingProxyType({"text_encoder": "TE1", "text_encoder_2": "TE2"}), "text_encoder_2",
                 MappingProxyType({"txt2img": "StableDiffusionXLPipeline",
                                   "img2img": "StableDiffusionXLImg2ImgPipeline",
                                   "inpaint": "StableDiffusionXLInpaintPipeline"})),
    "refiner": Layout("refiner", MappingProxyType({"text_encoder_2": "TE2"}), "text_encoder_2", MappingProxyType({
        "img2img": "StableDiffusionXLImg2ImgPipeline", "inpaint": "StableDiffusionXLInpaintPipeline"})),
})


@dataclass(frozen=True)
class TextSlot:
    """Where one text encoder's weights sit in a single-file checkpoint: `kind` "clip" is the HF CLIP layout under
    `text_model.`, "open_clip" OpenCLIP's (`transformer.resblocks.*`, q/k/v joined in `in_proj`)."""

    component: str
    kind: str
    prefix: str


@dataclass(frozen=True)
class CheckpointLayout:
    """A single-file (LDM/SGM) checkpoint layout: its text-encoder slots and whether its UNet is SDXL's
    (conditioned on pooled text and size embeddings)."""

    name: str
    slots: tuple[TextSlot, ...]
    xl_unet: bool


CHECKPOINT_LAYOUTS = MappingProxyType({
    "sd1": CheckpointLayout("sd1", (TextSlot("text_encoder", "clip", "cond_stage_model.transformer."),), False),
    "sd2": CheckpointLayout("sd2", (TextSlot("text_encoder", "open_clip", "cond_stage_model.model."),), False),
    "sdxl": CheckpointLayout("sdxl", (TextSlot("text_encoder", "clip", "conditioner.embedders.0.transformer."),
                                      TextSlot("text_encoder_2", "open_clip", "conditioner.embedders.1.model.")),
                             True),
    "sdxl-refiner": CheckpointLayout(
        "sdxl-refiner", (TextSlot("text_encoder_2", "open_clip", "conditioner.embedders.0.model."),), True),
})
UNET_PREFIX = "model.diffusion_model."  # every layout keeps its UNet here
VAE_PREFIX = "first_stage_model."


@dataclass(frozen=True)
class Family:
    """Everything labkit knows about one family without loading it.

    `context_width` is the UNet's cross-attention width (what tells the families of one layout apart);
    `text_widths` and `pad_tokens` go with the layout's text encoders, in order; `prediction` is what the model
    predicts when its file does not say (None: it depends, as for SD 2.x); `refiners` are the families whose UNet
    can finish this one's latents; `metadata` are (header key, value prefix) pairs that name the family in file
    metadata (modelspec, kohya's ss_*), `kohya_base` what labkit writes as kohya's ss_base_model_version.
    """

    name: str
    display: str
    layout: str
    checkpoint: str
    context_width: int
    text_widths: tuple[int, ...]
    pad_tokens: tuple[str, ...]
    native_size: int
    prediction: str | None = "epsilon"
    refiners: tuple[str, ...] = ()
    embedded: bool = False
    latent_channels: int = 4
    vae_scale: int = 8
    v_native_size: int | None = None  # the side of this family's v-prediction models, where it differs
    metadata: tuple[tuple[str, str], ...] = ()
    kohya_base: str = field(default="")

    @property
    def config(self) -> Path:
        """The family's diffusers config folder (JSON configs; no weights)."""
        return CONFIGS / self.name

    @property
    def pipeline_layout(self) -> Layout:
        return LAYOUTS[self.layout]

    @property
    def checkpoint_layout(self) -> CheckpointLayout:
        return CHECKPOINT_LAYOUTS[self.checkpoint]

    @property
    def text_encoders(self) -> tuple[str, ...]:
        return LAYOUTS[self.layout].text_encoders

    @property
    def vae_group(self) -> str:
        """Families whose VAEs are interchangeable share a group: SD 1.x and 2.x ("sd"), SDXL and its refiner
        ("sdxl"), the embedded toys (one shared VAE)."""
        return "toy" if self.embedded else "sdxl" if self.checkpoint.startswith("sdxl") else "sd"

    def pipeline(self, mode: str) -> str | None:
        """The diffusers pipeline class name for `mode`, or None when this family cannot run it."""
        return LAYOUTS[self.layout].pipelines.get(mode)

    def native_size_for(self, prediction: str | None) -> int:
        return self.v_native_size if prediction == "v_prediction" and self.v_native_size else self.native_size

    def pipeline_flags(self) -> dict:
        """Pipeline constructor flags the family's config sets (force_zeros_for_empty_prompt,
        requires_aesthetics_score)."""
        return dict(_pipeline_flags(self.name))

    def metadata_value(self, key: str) -> str | None:
        """The value this family writes for a metadata key it is named by (e.g. kohya's "ss_v2")."""
        return next((value for k, value in self.metadata if k == key), None)


FAMILIES = MappingProxyType({f.name: f for f in (
    Family("sd1", "SD 1.x", "sd", "sd1", 768, (768,), ("<|endoftext|>",), 512, kohya_base="sd_v1",
           metadata=(("modelspec.architecture", "stable-diffusion-v1"), ("ss_base_model_version", "sd_v1"),
                     ("ss_v2", "False"))),
    Family("sd2", "SD 2.x", "sd", "sd2", 1024, (1024,), ("!",), 512, prediction=None, v_native_size=768,
           kohya_base="sd_v2",
           metadata=(("modelspec.architecture", "stable-diffusion-v2"), ("ss_base_model_version", "sd_v2"),
                     ("ss_v2", "True"))),
    Family("sdxl", "SDXL", "xl", "sdxl", 2048, (768, 1280), ("<|endoftext|>", "!"), 1024,
           refiners=("sdxl-refiner", "sdxl"), kohya_base="sdxl_base_v1-0",
           metadata=(("modelspec.architecture", "stable-diffusion-xl"), ("ss_base_model_version", "sdxl"))),
    Family("sdxl-refiner", "SDXL refiner", "refiner", "sdxl-refiner", 1280, (1280,), ("!",), 1024,
           kohya_base="labkit_sdxl-refiner",
           metadata=(("modelspec.architecture", "stable-diffusion-xl-v1-refiner"),)),
    Family("toy", "labkit toy (SD1 layout)", "sd", "sd1", 64, (64,), ("<|endoftext|>",), 64, embedded=True,
           kohya_base="labkit_toy"),
    Family("toy-xl", "labkit toy-xl (SDXL layout)", "xl", "sdxl", 160, (64, 96), ("<|endoftext|>", "!"), 64,
           refiners=("toy-xl-refiner", "toy-xl"), embedded=True, kohya_base="labkit_toy-xl"),
    Family("toy-xl-refiner", "labkit toy-xl refiner", "refiner", "sdxl-refiner", 96, (96,), ("!",), 64,
           embedded=True, kohya_base="labkit_toy-xl-refiner"),
)})
VARIANTS_BY_IN_CHANNELS = MappingProxyType({9: "inpaint", 8: "instruct-pix2pix"})  # UNet input channels -> variant


def family(name) -> Family:
    """The record of family `name`; UnsupportedFile naming the known families otherwise."""
    if not isinstance(name, str) or name not in FAMILIES:
        from .checks import did_you_mean

        raise UnsupportedFile(f"Unknown model family {name!r}; known families: {', '.join(FAMILIES)}."
                              + did_you_mean(name, FAMILIES))
    return FAMILIES[name]


def names() -> list[str]:
    return list(FAMILIES)


@lru_cache(maxsize=None)
def _pipeline_flags(name: str) -> MappingProxyType:
    index = json.loads((CONFIGS / name / "model_index.json").read_text())
    keys = ("force_zeros_for_empty_prompt", "requires_aesthetics_score")
    return MappingProxyType({k: index[k] for k in keys if k in index})
