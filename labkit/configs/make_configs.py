"""Write the small diffusers config folders labkit ships per family (run once: python -m labkit.configs.make_configs).

Full-size families mirror the public SD 1.x / 2.x / SDXL / SDXL-refiner configs (parameter counts are checked by
tests/test_configs.py); the toy families are labkit's embedded models: the same layouts at laptop-CPU size.
"""
import json, os
from pathlib import Path
root = Path(__file__).parent

def w(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")

SCHED_SD = {"_class_name": "PNDMScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
            "beta_schedule": "scaled_linear", "trained_betas": None, "set_alpha_to_one": False, "skip_prk_steps": True,
            "steps_offset": 1, "clip_sample": False, "prediction_type": "epsilon", "timestep_spacing": "leading"}
SCHED_XL = {"_class_name": "EulerDiscreteScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
            "beta_schedule": "scaled_linear", "trained_betas": None, "steps_offset": 1, "prediction_type": "epsilon",
            "interpolation_type": "linear", "use_karras_sigmas": False, "timestep_spacing": "leading",
            "clip_sample": False, "set_alpha_to_one": False, "skip_prk_steps": True, "sample_max_value": 1.0}

def vae(channels, sample_size, scaling, groups=32, layers=2, force_upcast=True):
    n = len(channels)
    return {"_class_name": "AutoencoderKL", "in_channels": 3, "out_channels": 3, "latent_channels": 4,
            "block_out_channels": list(channels), "layers_per_block": layers, "norm_num_groups": groups,
            "act_fn": "silu", "sample_size": sample_size, "scaling_factor": scaling, "force_upcast": force_upcast,
            "down_block_types": ["DownEncoderBlock2D"] * n, "up_block_types": ["UpDecoderBlock2D"] * n}

def clip(hidden, inter, layers, heads, act, proj, cls="CLIPTextModel", pad=1, eos=2, bos=0):
    return {"architectures": [cls], "model_type": "clip_text_model", "vocab_size": 49408, "hidden_size": hidden,
            "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": heads,
            "max_position_embeddings": 77, "hidden_act": act, "projection_dim": proj, "layer_norm_eps": 1e-5,
            "initializer_range": 0.02, "initializer_factor": 1.0, "attention_dropout": 0.0, "dropout": 0.0,
            "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 1, "torch_dtype": "float32"}

def unet(channels, down, up, layers, cross, heads, sample, linear=False, tlayers=1, groups=32, in_ch=4, **extra):
    cfg = {"_class_name": "UNet2DConditionModel", "sample_size": sample, "in_channels": in_ch, "out_channels": 4,
           "center_input_sample": False, "flip_sin_to_cos": True, "freq_shift": 0, "down_block_types": down,
           "up_block_types": up, "block_out_channels": list(channels), "layers_per_block": layers,
           "downsample_padding": 1, "mid_block_scale_factor": 1, "act_fn": "silu", "norm_num_groups": groups,
           "norm_eps": 1e-5, "cross_attention_dim": cross, "attention_head_dim": heads,
           "use_linear_projection": linear, "transformer_layers_per_block": tlayers}
    cfg.update(extra)
    return cfg

SD1_DOWN = ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"]
SD1_UP = ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3
XL_DOWN = ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"]
XL_UP = ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]
REF_DOWN = ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
REF_UP = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]

def sd_index(te_cls="CLIPTextModel", sched="PNDMScheduler"):
    return {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
            "scheduler": ["diffusers", sched], "text_encoder": ["transformers", te_cls],
            "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"], "safety_checker": [None, None], "feature_extractor": [None, None],
            "requires_safety_checker": False}

def xl_index():
    return {"_class_name": "StableDiffusionXLPipeline", "_diffusers_version": "0.42.1",
            "scheduler": ["diffusers", "EulerDiscreteScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
            "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
            "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
            "force_zeros_for_empty_prompt": True}

def ref_index():
    return {"_class_name": "StableDiffusionXLImg2ImgPipeline", "_diffusers_version": "0.42.1",
            "scheduler": ["diffusers", "EulerDiscreteScheduler"], "text_encoder": [None, None],
            "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"], "tokenizer": [None, None],
            "tokenizer_2": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"], "requires_aesthetics_score": True, "force_zeros_for_empty_prompt": False}

def family(name, index, comps, sched):
    d = root / name
    w(d / "model_index.json", index)
    for sub, cfg in comps.items():
        w(d / sub / "config.json", cfg)
    w(d / "scheduler" / "scheduler_config.json", sched)

CLIP_L = clip(768, 3072, 12, 12, "quick_gelu", 768)
CLIP_H = clip(1024, 4096, 23, 16, "gelu", 512)
CLIP_G = clip(1280, 5120, 32, 20, "gelu", 1280, cls="CLIPTextModelWithProjection")
SD_VAE = vae((128, 256, 512, 512), 512, 0.18215, force_upcast=True)
XL_VAE = vae((128, 256, 512, 512), 1024, 0.13025, force_upcast=True)

family("sd1", sd_index(), {"unet": unet((320, 640, 1280, 1280), SD1_DOWN, SD1_UP, 2, 768, 8, 64),
                            "vae": SD_VAE, "text_encoder": CLIP_L}, SCHED_SD)
family("sd2", sd_index(), {"unet": unet((320, 640, 1280, 1280), SD1_DOWN, SD1_UP, 2, 1024, [5, 10, 20, 20], 96, linear=True),
                            "vae": SD_VAE, "text_encoder": CLIP_H}, SCHED_SD)
family("sdxl", xl_index(), {"unet": unet((320, 640, 1280), XL_DOWN, XL_UP, 2, 2048, [5, 10, 20], 128, linear=True,
                                          tlayers=[1, 2, 10], addition_embed_type="text_time", addition_time_embed_dim=256,
                                          projection_class_embeddings_input_dim=2816),
                             "vae": XL_VAE, "text_encoder": CLIP_L, "text_encoder_2": CLIP_G}, SCHED_XL)
family("sdxl-refiner", ref_index(), {"unet": unet((384, 768, 1536, 1536), REF_DOWN, REF_UP, 2, 1280, [6, 12, 24, 24], 128,
                                                   linear=True, tlayers=4, addition_embed_type="text_time",
                                                   addition_time_embed_dim=256, projection_class_embeddings_input_dim=2560),
                                      "vae": XL_VAE, "text_encoder_2": CLIP_G}, SCHED_XL)

# labkit's embedded family: the same layouts at a size a laptop CPU runs in well under a second
TOY_L = clip(64, 256, 2, 2, "quick_gelu", 64)
TOY_G = clip(96, 384, 2, 3, "gelu", 96, cls="CLIPTextModelWithProjection")
TOY_VAE = vae((16, 32, 64, 64), 64, 0.8402, groups=8, layers=1, force_upcast=False)
TOY_SCHED = dict(SCHED_SD)
TOY_DOWN = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
TOY_UP = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
family("toy", sd_index(), {"unet": unet((32, 64, 64), TOY_DOWN, TOY_UP, 1, 64, 4, 8, groups=16),
                            "vae": TOY_VAE, "text_encoder": TOY_L}, TOY_SCHED)
family("toy-xl", xl_index(), {"unet": unet((32, 64, 64), XL_DOWN, XL_UP, 1, 160, 4, 8, linear=True, tlayers=[1, 1, 2],
                                            groups=16, addition_embed_type="text_time", addition_time_embed_dim=16,
                                            projection_class_embeddings_input_dim=6 * 16 + 96),
                               "vae": TOY_VAE, "text_encoder": TOY_L, "text_encoder_2": TOY_G}, SCHED_XL)
family("toy-xl-refiner", ref_index(), {"unet": unet((32, 64, 64), XL_DOWN, XL_UP, 1, 96, 4, 8, linear=True, tlayers=1,
                                                    groups=16, addition_embed_type="text_time", addition_time_embed_dim=16,
                                                    projection_class_embeddings_input_dim=5 * 16 + 96),
                                        "vae": TOY_VAE, "text_encoder_2": TOY_G}, SCHED_XL)
