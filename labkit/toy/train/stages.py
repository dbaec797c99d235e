"""The stages by name, and `train`: one stage with its recipe, some fields overridden."""

from dataclasses import fields, replace
from types import MappingProxyType

from .controlnet import train_controlnet
from .inpaint import train_inpaint
from .recipe import RECIPES, STAGES, StageRecipe
from .refiner import train_refiner
from .run import Run
from .sd import train_toy
from .upscaler import train_upscaler
from .vae import train_vae, train_vae_decoder
from .xl import train_toy_xl

TRAINERS = MappingProxyType({"vae": train_vae, "vae-decoder": train_vae_decoder, "toy": train_toy,
                             "toy-xl": train_toy_xl, "toy-xl-refiner": train_refiner, "toy-inpaint": train_inpaint,
                             "toy-controlnet": train_controlnet, "toy-upscaler": train_upscaler})


def train(stage, run=None, **overrides):
    """Train one stage with its recipe (fields overridden by `overrides`); returns its record."""
    if stage not in TRAINERS:
        raise ValueError(f"Unknown stage {stage!r}; train one of {', '.join(STAGES)} or 'all'.")
    unknown = set(overrides) - {f.name for f in fields(StageRecipe)}
    if unknown:
        raise TypeError(f"Not recipe fields: {', '.join(sorted(unknown))}.")
    return TRAINERS[stage](run or Run(), replace(RECIPES[stage], **overrides))
