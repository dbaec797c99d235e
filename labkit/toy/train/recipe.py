"""What decides each stage's weights: its recipe (a frozen dataclass per stage) and the world it trains on."""

from dataclasses import dataclass
from types import MappingProxyType

TRAIN_WORLD, HELD_OUT_WORLD = 0, 1  # world.dataset seeds: training pools / the VAE's held-out images
VAE_STYLES = MappingProxyType({None: 0.5, "outlined": 0.25, "striped": 0.25})  # the VAE sees every style
SIZE = 64  # pixels; latents are SIZE / 8


@dataclass(frozen=True)
class StageRecipe:
    """Everything that decides one stage's weights (with the code and the torch build)."""

    seed: int
    steps: int
    batch: int
    lr: float  # UNet (VAE for the vae stage)
    te_lr: float = 0.0  # the text encoder trained in this stage; 0: none
    pool: int = 16000  # training images (rendered once; latents precomputed for the UNet stages)
    weight_decay: float = 0.01  # on weight matrices and kernels only (not biases, norms, embeddings)
    warmup: float = 0.05  # share of steps with a linear warmup, then cosine decay to 0
    grad_clip: float = 1.0
    ema: float = 0.999  # decay of the weights' EMA (what is saved); 0: save the raw weights
    dropout: float = 0.1  # caption dropout: share of samples trained unconditionally
    null_text: float = 0.0  # toy-xl: share of those encoded as "" rather than zeros (see README)
    t_max: int = 1000  # timesteps drawn uniformly from [0, t_max)
    kl: float = 1e-6  # vae: KL (summed over the latent) weight
    mse: float = 0.1  # vae: MSE weight beside L1
    scale_images: int = 4096  # vae: images for scaling_factor = 1 / std(latent means)
    eval_images: int = 256  # vae: held-out images for the PSNR
    gray_weight: float = 1.0  # vae-decoder: how much more often gray-background pictures are drawn


# stage -> recipe, in the order the stages run (each later one reads parts the earlier ones wrote)
RECIPES = MappingProxyType({
    "vae": StageRecipe(seed=101, steps=4000, batch=32, lr=1e-3, pool=8000, ema=0.0),
    "vae-decoder": StageRecipe(seed=106, steps=1600, batch=32, lr=2e-4, pool=6000, ema=0.0, gray_weight=3.0),
    "toy": StageRecipe(seed=102, steps=4000, batch=64, lr=1e-3, te_lr=3e-4),
    "toy-xl": StageRecipe(seed=103, steps=5000, batch=64, lr=1e-3, te_lr=3e-4, null_text=0.5),
    "toy-xl-refiner": StageRecipe(seed=104, steps=2400, batch=64, lr=1e-3, t_max=200),
    "toy-inpaint": StageRecipe(seed=105, steps=1200, batch=64, lr=5e-4, pool=8000),
    "toy-controlnet": StageRecipe(seed=107, steps=4500, batch=64, lr=1e-3, pool=8000, dropout=0.3),
    "toy-upscaler": StageRecipe(seed=108, steps=4000, batch=32, lr=2e-3, pool=3000, weight_decay=0.0, ema=0.0),
})
STAGES = tuple(RECIPES)
