"""The small diffusers config folders labkit ships per family: `python -m labkit.configs.make_configs` rewrites them.

Full-size families mirror the public SD 1.x / 2.x / SDXL / SDXL-refiner configs (parameter counts are checked by
tests/test_configs.py); the toy families are labkit's embedded models: the same layouts at laptop-CPU size. The
architectures are a table here; the one trained number among them, the toy VAE's scaling factor, is data: it is
read from the `vae` stage's record in the toy training records (`labkit/toy/weights/training.json`), and the
trainer calls `write_configs` after training a new VAE. Importing this module writes nothing.
"""

import json
from pathlib import Path

from ..files import save_json
from ..toy.registry import WEIGHTS

ROOT = Path(__file__).parent  # labkit/configs: one folder per family

SCHEDULER_SD = {"_class_name": "PNDMScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085,
                "beta_end": 0.012, "beta_schedule": "scaled_linear", "trained_betas": None, "set_alpha_to_one": False,
                "skip_prk_steps": True, "steps_offset": 1, "clip_sample": False, "prediction_type": "epsilon",
                "timestep_spacing": "leading"}
SCHEDULER_XL = {"_class_name": "EulerDiscreteScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085,
                "beta_end": 0.012, "beta_schedule": "scaled_linear", "trained_betas": None, "steps_offset": 1,
                "prediction_type": "epsilon", "interpolation_type": "linear", "use_karras_sigmas": False,
                "timestep_spacing": "leading", "clip_sample": False, "set_alpha_to_one": False,
                "skip_prk_steps": True, "sample_max_value": 1.0}

SD1_DOWN = ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"]
SD1_UP = ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3
XL_DOWN = ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"]
XL_UP = ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]
REFINER_DOWN = ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
REFINER_UP = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]
TOY_DOWN = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
TOY_UP = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]


def vae(channels, sample_size, scaling_factor, groups=32, layers=2, force_upcast=True) -> dict:
    """An AutoencoderKL config: one encoder / decoder block per entry of `channels`."""
    blocks = len(channels)
    return {"_class_name": "AutoencoderKL", "in_channels": 3, "out_channels": 3, "latent_channels": 4,
            "block_out_channels": list(channels), "layers_per_block": layers, "norm_num_groups": groups,
            "act_fn": "silu", "sample_size": sample_size, "scaling_factor": scaling_factor,
            "force_upcast": force_upcast, "down_block_types": ["DownEncoderBlock2D"] * blocks,
            "up_block_types": ["UpDecoderBlock2D"] * blocks}


def clip(hidden, intermediate, layers, heads, activation, projection, architecture="CLIPTextModel") -> dict:
    """A transformers CLIP text-encoder config with CLIP's vocabulary and 77 positions."""
    return {"architectures": [architecture], "model_type": "clip_text_model", "vocab_size": 49408,
            "hidden_size": hidden, "intermediate_size": intermediate, "num_hidden_layers": layers,
            "num_attention_heads": heads, "max_position_embeddings": 77, "hidden_act": activation,
            "projection_dim": projection, "layer_norm_eps": 1e-5, "initializer_range": 0.02,
            "initializer_factor": 1.0, "attention_dropout": 0.0, "dropout": 0.0, "bos_token_id": 49406,
            "eos_token_id": 49407, "pad_token_id": 1, "torch_dtype": "float32"}


def unet(channels, down, up, layers, cross_attention, heads, sample_size, linear=False, transformer_layers=1,
         groups=32, **extra) -> dict:
    """A UNet2DConditionModel config; `extra` adds SDXL's conditioning keys (addition_embed_type...)."""
    return {"_class_name": "UNet2DConditionModel", "sample_size": sample_size, "in_channels": 4, "out_channels": 4,
            "center_input_sample": False, "flip_sin_to_cos": True, "freq_shift": 0, "down_block_types": down,
            "up_block_types": up, "block_out_channels": list(channels), "layers_per_block": layers,
            "downsample_padding": 1, "mid_block_scale_factor": 1, "act_fn": "silu", "norm_num_groups": groups,
            "norm_eps": 1e-5, "cross_attention_dim": cross_attention, "attention_head_dim": heads,
            "use_linear_projection": linear, "transformer_layers_per_block": transformer_layers, **extra}


def sd_index() -> dict:
    """model_index.json of an SD 1.x / 2.x pipeline (no safety checker)."""
    return {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
            "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"], "safety_checker": [None, None], "feature_extractor": [None, None],
            "requires_safety_checker": False}


def xl_index() -> dict:
    """model_index.json of an SDXL base pipeline."""
    return {"_class_name": "StableDiffusionXLPipeline", "_diffusers_version": "0.42.1",
            "scheduler": ["diffusers", "EulerDiscreteScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
            "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
            "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
            "force_zeros_for_empty_prompt": True}


def refiner_index() -> dict:
    """model_index.json of an SDXL refiner pipeline (second text encoder only)."""
    return {"_class_name": "StableDiffusionXLImg2ImgPipeline", "_diffusers_version": "0.42.1",
            "scheduler": ["diffusers", "EulerDiscreteScheduler"], "text_encoder": [None, None],
            "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"], "tokenizer": [None, None],
            "tokenizer_2": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"], "requires_aesthetics_score": True,
            "force_zeros_for_empty_prompt": False}


CLIP_L = clip(768, 3072, 12, 12, "quick_gelu", 768)
CLIP_H = clip(1024, 4096, 23, 16, "gelu", 512)
CLIP_G = clip(1280, 5120, 32, 20, "gelu", 1280, architecture="CLIPTextModelWithProjection")
SD_VAE = vae((128, 256, 512, 512), 512, 0.18215)
XL_VAE = vae((128, 256, 512, 512), 1024, 0.13025)
XL_CONDITIONING = {"addition_embed_type": "text_time", "addition_time_embed_dim": 256}

# labkit's embedded family: the same layouts at a size a laptop CPU runs in well under a second
TOY_L = clip(64, 256, 2, 2, "quick_gelu", 64)
TOY_G = clip(96, 384, 2, 3, "gelu", 96, architecture="CLIPTextModelWithProjection")
TOY_CONDITIONING = {"addition_embed_type": "text_time", "addition_time_embed_dim": 16}


def toy_vae(scaling_factor) -> dict:
    """The VAE every toy member shares; `scaling_factor` comes from its training record."""
    return vae((16, 32, 64, 64), 64, scaling_factor, groups=8, layers=1, force_upcast=False)


def toy_scaling_factor(weights=WEIGHTS) -> float:
    """The toy VAE's scaling factor (1 / std of its latents), as the `vae` stage recorded it in `weights`."""
    return json.loads((Path(weights) / "training.json").read_text())["vae"]["scaling_factor"]


def family_configs(toy_scaling) -> dict:
    """{family: (model_index, {component: config}, scheduler config)} of every family labkit ships."""
    toy_vae_config = toy_vae(toy_scaling)
    return {
        "sd1": (sd_index(), {"unet": unet((320, 640, 1280, 1280), SD1_DOWN, SD1_UP, 2, 768, 8, 64),
                             "vae": SD_VAE, "text_encoder": CLIP_L}, SCHEDULER_SD),
        "sd2": (sd_index(), {"unet": unet((320, 640, 1280, 1280), SD1_DOWN, SD1_UP, 2, 1024, [5, 10, 20, 20], 96,
                                          linear=True),
                             "vae": SD_VAE, "text_encoder": CLIP_H}, SCHEDULER_SD),
        "sdxl": (xl_index(), {"unet": unet((320, 640, 1280), XL_DOWN, XL_UP, 2, 2048, [5, 10, 20], 128, linear=True,
                                           transformer_layers=[1, 2, 10], **XL_CONDITIONING,
                                           projection_class_embeddings_input_dim=2816),
                              "vae": XL_VAE, "text_encoder": CLIP_L, "text_encoder_2": CLIP_G}, SCHEDULER_XL),
        "sdxl-refiner": (refiner_index(), {"unet": unet((384, 768, 1536, 1536), REFINER_DOWN, REFINER_UP, 2, 1280,
                                                        [6, 12, 24, 24], 128, linear=True, transformer_layers=4,
                                                        **XL_CONDITIONING,
                                                        projection_class_embeddings_input_dim=2560),
                                           "vae": XL_VAE, "text_encoder_2": CLIP_G}, SCHEDULER_XL),
        "toy": (sd_index(), {"unet": unet((32, 64, 64), TOY_DOWN, TOY_UP, 1, 64, 4, 8, groups=16),
                             "vae": toy_vae_config, "text_encoder": TOY_L}, SCHEDULER_SD),
        "toy-xl": (xl_index(), {"unet": unet((32, 64, 64), XL_DOWN, XL_UP, 1, 160, 4, 8, linear=True,
                                             transformer_layers=[1, 1, 2], groups=16, **TOY_CONDITIONING,
                                             projection_class_embeddings_input_dim=6 * 16 + 96),
                                "vae": toy_vae_config, "text_encoder": TOY_L, "text_encoder_2": TOY_G}, SCHEDULER_XL),
        "toy-xl-refiner": (refiner_index(), {"unet": unet((32, 64, 64), XL_DOWN, XL_UP, 1, 96, 4, 8, linear=True,
                                                          groups=16, **TOY_CONDITIONING,
                                                          projection_class_embeddings_input_dim=5 * 16 + 96),
                                             "vae": toy_vae_config, "text_encoder_2": TOY_G}, SCHEDULER_XL),
    }


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_json(data, path)


def write_configs(root=ROOT, weights=WEIGHTS) -> None:
    """Write every family's config folder under `root`, the toy VAE's scaling factor read from `weights`."""
    for name, (index, components, scheduler) in family_configs(toy_scaling_factor(weights)).items():
        folder = Path(root) / name
        _write_json(folder / "model_index.json", index)
        for component, config in components.items():
            _write_json(folder / component / "config.json", config)
        _write_json(folder / "scheduler" / "scheduler_config.json", scheduler)


if __name__ == "__main__":
    write_configs()
