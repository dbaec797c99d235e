"""The embedded style LoRAs for `toy`, trained with `labkit.lora.train` on the world's styled pictures.

    python -m labkit.toy.loras outline|stripes|all [--steps N]

Each is kohya-format with `ss_*` metadata and lands in `labkit/toy/loras/`, on the default LoRA search path, so
`lab.txt2img("an outlined red star on a black background <lora:outline:1>")` finds it.

Recipe (DEFAULTS): 1024 pictures of the style, rank 16 (alpha 16) on the UNet's attention, feed-forward and
ResNet convolutions (kohya LoCon layout) and the text encoder's attention and MLPs, 2000 steps of batch 64,
AdamW at 2e-3 with a cosine decay, gradients clipped to 1, 10 % of the captions dropped (so the LoRA also draws
its style for the empty prompt that classifier-free guidance subtracts), the weights' moving average (decay
0.999) saved in float16. Measured scores: labkit/toy/README.md.
"""

import argparse
import time
from pathlib import Path

FOLDER = Path(__file__).parent / "loras"
# LoRA name -> (world style it teaches, world seed of its pictures); the style word is in every caption
STYLE_LORAS = {"outline": ("outlined", 201), "stripes": ("striped", 202)}
DEFAULTS = {"images": 1024, "steps": 2000, "rank": 16, "lr": 2e-3, "batch": 64, "text_encoder": True,
            "targets": "all", "lr_schedule": "cosine", "ema": 0.999, "save_dtype": "float16", "caption_dropout": 0.1}


def pictures(style: str, seed: int, n: int):
    """n single-object pictures of `style` with their captions ("an outlined red star on a black background")."""
    from .world import example

    items = [example(seed, i, style_mix=style, p_two=0.0) for i in range(n)]
    return [image for image, _, _ in items], [caption for _, caption, _ in items]


def train_style(name: str, lab=None, out_dir=FOLDER, steps=DEFAULTS["steps"], images=DEFAULTS["images"],
                rank=DEFAULTS["rank"], lr=DEFAULTS["lr"], batch=DEFAULTS["batch"],
                text_encoder=DEFAULTS["text_encoder"], targets=DEFAULTS["targets"], lr_schedule=DEFAULTS["lr_schedule"],
                ema=DEFAULTS["ema"], save_dtype=DEFAULTS["save_dtype"], caption_dropout=DEFAULTS["caption_dropout"],
                progress=True):
    """Train the style LoRA `name` on `toy` (or `lab`) and write `<out_dir>/<name>.safetensors` (replaced only in
    labkit's own folder; elsewhere an existing file is an error)."""
    from ..loading import open as open_model
    from ..lora.training import train

    style, seed = STYLE_LORAS[name]
    lab = lab or open_model("toy")
    imgs, captions = pictures(style, seed, images)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return train(lab, imgs, captions, rank=rank, steps=steps, lr=lr, out=Path(out_dir) / f"{name}.safetensors",
                 seed=seed, text_encoder=text_encoder, batch_size=batch, targets=targets,
                 lr_schedule=lr_schedule, ema=ema, save_dtype=save_dtype, caption_dropout=caption_dropout,
                 progress=progress,
                 overwrite=Path(out_dir) == FOLDER)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m labkit.toy.loras", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=[*STYLE_LORAS, "all"])
    parser.add_argument("--steps", type=int, default=DEFAULTS["steps"])
    args = parser.parse_args(argv)
    for name in STYLE_LORAS if args.name == "all" else [args.name]:
        start = time.perf_counter()
        result = train_style(name, steps=args.steps)
        print(f"{name}: {result.path}, loss {result.losses[0]:.4f} -> {sum(result.losses[-20:]) / 20:.4f}, "
              f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
