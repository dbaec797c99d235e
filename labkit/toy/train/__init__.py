"""Train labkit's embedded model family on the toy world: `python -m labkit.toy.train <member|all> [options]`.

Stages run in this order; later ones reuse (frozen) the parts earlier ones wrote, read back from disk in float16,
exactly as they ship. One module per stage:

    vae             vae.py      AutoencoderKL (64x64 <-> 4x8x8); its record holds the configs' scaling_factor
    vae-decoder     vae.py      the VAE's decoder alone, gray backgrounds oversampled (the encoder stays)
    toy             sd.py       SD1-layout UNet + CLIP-L text encoder, trained together
    toy-xl          xl.py       SDXL-layout UNet + OpenCLIP-G-like encoder (CLIP-L frozen)
    toy-xl-refiner  refiner.py  SDXL-refiner UNet on the low-noise end (G frozen)
    toy-inpaint     inpaint.py  9-channel UNet started from toy's UNet (CLIP-L frozen)

and what they share: recipe.py (`StageRecipe`, `RECIPES`), parts.py (members, part files, key prefixes),
run.py (`Run`, records, manifest, logs), text.py (text encoding), data.py, loop.py (the optimisation loop),
stages.py (`train`), __main__.py (the command line).

Text is encoded exactly as the diffusers pipelines encode prompts at inference (tests/toy/test_train.py checks
it against `encode_prompt`), and caption dropout feeds the unconditional input each pipeline uses for an empty
negative prompt. Everything random comes from generators seeded from the stage's seed: a rerun on the same
machine writes the same bytes. Importing this package loads no torch.
"""

from .data import encode_images, index_stream, to_unit
from .inpaint import inpaint_extra, inpaint_masks, inpaint_unet
from .loop import diffusion_loss, noise_scheduler, optimise
from .parts import (CLIP_G_REFINER, CLIP_G_XL, CLIP_L_SD1, CLIP_L_XL, ENCODER_KEYS, MEMBERS, STAGE_INPUTS, UNET_PREFIX,
                    VAE_PART, VAE_PREFIX, load_text_encoder_part, load_unet_part, load_vae_part, member_hash,
                    read_part, save_part)
from .recipe import HELD_OUT_WORLD, RECIPES, SIZE, STAGES, TRAIN_WORLD, VAE_STYLES, StageRecipe
from .run import RECORDS, Run, read_records, write_record
from .stages import TRAINERS, train
from .text import Tokens, encode_sd, encode_xl, refiner_time_ids, token_ids, xl_time_ids

__all__ = [
    "CLIP_G_REFINER", "CLIP_G_XL", "CLIP_L_SD1", "CLIP_L_XL", "ENCODER_KEYS", "HELD_OUT_WORLD", "MEMBERS", "RECIPES",
    "RECORDS", "SIZE", "STAGES", "STAGE_INPUTS", "TRAINERS", "TRAIN_WORLD", "UNET_PREFIX", "VAE_PART", "VAE_PREFIX",
    "VAE_STYLES", "Run", "StageRecipe", "Tokens", "diffusion_loss", "encode_images", "encode_sd", "encode_xl",
    "index_stream", "inpaint_extra", "inpaint_masks", "inpaint_unet", "load_text_encoder_part", "load_unet_part",
    "load_vae_part", "member_hash", "noise_scheduler", "optimise", "read_part", "read_records", "refiner_time_ids",
    "save_part", "to_unit", "token_ids", "train", "write_record", "xl_time_ids",
]
