"""Text conditioning exactly as the diffusers pipelines compute it at inference, and the captions it encodes.

tests/toy/test_train.py checks each encoder against the pipeline's `encode_prompt` and `_get_add_time_ids`.
"""

from .. import world
from .recipe import SIZE

XL_TIME_IDS = (SIZE, SIZE, 0, 0, SIZE, SIZE)  # original size, crop top-left, target size
REFINER_SIZE_IDS = (SIZE, SIZE, 0, 0)  # original size, crop top-left; the aesthetic score follows
AESTHETIC, NEGATIVE_AESTHETIC = 6.0, 2.5  # diffusers' img2img defaults for aesthetic_score / negative_...


def token_ids(tokenizer, prompts):
    """(B, 77) ids, padded and truncated as every SD/SDXL pipeline tokenizes."""
    return tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids


def encode_sd(text_encoder, ids):
    """StableDiffusionPipeline.encode_prompt: the last hidden state, after the final layer norm."""
    return text_encoder(ids.to(text_encoder.device))[0]  # (B, 77, width)


def encode_xl(text_encoders, ids):
    """StableDiffusionXL(Img2Img)Pipeline.encode_prompt: every encoder's penultimate hidden state, side by side,
    and the last encoder's projected pooled output. Returns (embeds (B, 77, sum of widths), pooled (B, proj))."""
    import torch

    hidden, pooled = [], None
    for encoder, encoder_ids in zip(text_encoders, ids):
        out = encoder(encoder_ids.to(encoder.device), output_hidden_states=True)
        hidden.append(out.hidden_states[-2])  # (B, 77, width): no final layer norm
        pooled = out[0] if out[0].ndim == 2 else pooled  # text_embeds of the encoder with a projection
    return torch.cat(hidden, dim=-1), pooled


def xl_time_ids(batch):
    """SDXL base `time_ids` (B, 6): StableDiffusionXLPipeline._get_add_time_ids for a 64x64 picture, uncropped."""
    import torch

    return torch.tensor([XL_TIME_IDS], dtype=torch.float32).repeat(batch, 1)


def refiner_time_ids(keep):
    """SDXL refiner `time_ids` (B, 5): size, crop and the aesthetic score (6.0 with a caption, 2.5 without), as
    StableDiffusionXLImg2ImgPipeline._get_add_time_ids gives for the prompt and the negative prompt."""
    import torch

    score = torch.where(keep, AESTHETIC, NEGATIVE_AESTHETIC)[:, None]  # (B, 1)
    return torch.cat([torch.tensor([REFINER_SIZE_IDS], dtype=torch.float32).repeat(len(keep), 1), score], dim=1)


class Tokens:
    """Token ids per caption, cached (a caption recurs many times in a run; tokenizing is the slow part)."""

    def __init__(self, tokenizer):
        self.tokenizer, self.cache = tokenizer, {}

    def __call__(self, prompts):
        import torch

        missing = [p for p in dict.fromkeys(prompts) if p not in self.cache]
        if missing:
            self.cache.update(zip(missing, token_ids(self.tokenizer, missing)))
        return torch.stack([self.cache[p] for p in prompts])  # (B, 77)


def captions(scenes, rng, keep, null=""):
    """A caption variant per scene (world.caption, fresh each draw); `null` where `keep` is False."""
    return [world.caption(scene, rng) if k else null for scene, k in zip(scenes, keep)]
