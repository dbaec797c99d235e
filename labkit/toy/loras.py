"""The embedded style LoRAs for `toy`, trained with `labkit.lora.train` on the world's styled pictures.

    python -m labkit.toy.loras outline|stripes|all [--steps N]

Each is kohya-format with `ss_*` metadata and lands in `labkit/toy/loras/`, on the default LoRA search path, so
`lab.txt2img("an outlined red star on a black background <lora:outline:1>")` finds it.

Status: with these defaults the training loss falls (0.38 -> 0.08) but the pictures do not yet show the style
reliably; the recipe (steps, rank, learning rate, text-encoder training) still needs tuning before labkit ships
these LoRAs.
"""

import argparse
from pathlib import Path

FOLDER = Path(__file__).parent / "loras"
# LoRA name -> (world style it teaches, world seed of its pictures); the style word is in every caption
STYLE_LORAS = {"outline": ("outlined", 201), "stripes": ("striped", 202)}
DEFAULTS = {"images": 48, "steps": 800, "rank": 8, "lr": 1e-3, "text_encoder": True}


def pictures(style: str, seed: int, n: int):
    """n single-object pictures of `style` with their captions ("an outlined red star on a black background")."""
    from .world import example

    items = [example(seed, i, style_mix=style, p_two=0.0) for i in range(n)]
    return [image for image, _, _ in items], [caption for _, caption, _ in items]


def train_style(name: str, lab=None, out_dir=FOLDER, steps=DEFAULTS["steps"], images=DEFAULTS["images"],
                rank=DEFAULTS["rank"], lr=DEFAULTS["lr"], text_encoder=DEFAULTS["text_encoder"], progress=True):
    """Train the style LoRA `name` on `toy` (or `lab`) and write `<out_dir>/<name>.safetensors`."""
    import labkit
    from labkit.lora import train

    style, seed = STYLE_LORAS[name]
    lab = lab or labkit.open("toy")
    imgs, captions = pictures(style, seed, images)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return train(lab, imgs, captions, rank=rank, steps=steps, lr=lr, out=Path(out_dir) / f"{name}.safetensors",
                 seed=seed, text_encoder=text_encoder, progress=progress, overwrite=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m labkit.toy.loras", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=[*STYLE_LORAS, "all"])
    parser.add_argument("--steps", type=int, default=DEFAULTS["steps"])
    args = parser.parse_args(argv)
    for name in STYLE_LORAS if args.name == "all" else [args.name]:
        result = train_style(name, steps=args.steps)
        print(f"{name}: {result.path}, loss {result.losses[0]:.4f} -> {sum(result.losses[-20:]) / 20:.4f}")


if __name__ == "__main__":
    main()
