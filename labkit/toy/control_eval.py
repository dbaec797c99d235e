"""How well `toy-controlnet` follows its control, measured by the judge (which shares no code with training).

    python -m labkit.toy.control_eval [--n 100] [--steps 20] [--controlnet toy-controlnet]

Protocol: held-out scenes of one object (world seed 1, never seen in training), each rendered, turned into a Canny
map by the `canny` preprocessor (pixel perfect, as a user would), and generated with a prompt naming *another*
color than the scene's ("a red star on a gray background" for a blue star): the ControlNet must keep the
silhouette, the prompt the color. Scored per sample: IoU of the judge's silhouette of the output with the scene's
own silhouette (geometry from the world, not from the edge map), the judge's color against the prompt's, and the
same prompt and seed without the unit (where the plain model puts its object) and with weight 0 (must equal the
plain picture). The measure's own ceiling is recorded beside: the same IoU of the scene picture itself (about 1:
the silhouette is read at half contrast, the level that defines the drawn mask) and of the scene after a round
trip through the VAE (the sharpest a generated picture can be). Writes labkit/toy/samples/toy-controlnet.json and a
grid (control, output, overlay) .png.
"""

import argparse
import json
from pathlib import Path

import numpy as np

SAMPLES = Path(__file__).parent / "samples"
HELD_OUT_WORLD = 1
IOU_GOAL, SHARE_GOAL = 0.8, 0.9


def cases(n: int, seed: int = HELD_OUT_WORLD) -> list:
    """[(scene, prompt naming another color, that color)]: n held-out one-object scenes."""
    from dataclasses import replace

    from . import world
    from .judge import COLORS

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        scene = world.sample_scene(rng, allow_two=False)
        own = scene.objects[0].color
        other = [c for c in COLORS if c != own][i % (len(COLORS) - 1)]
        recolored = world.Scene([replace(scene.objects[0], color=other)], scene.background)
        out.append((scene, world.canonical_caption(recolored), other))
    return out


def iou(a, b) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def evaluate(lab, n: int = 100, steps: int = 20, cfg: float = 4.0, controlnet: str = "toy-controlnet") -> dict:
    """Scores and per-sample records of `controlnet` on `lab` (see the module's docstring)."""
    from ..controlnet.units import ControlUnit
    from .judge import judge, silhouette

    records = []
    for k, (scene, prompt, color) in enumerate(cases(n)):
        picture, truth = scene.render(64), np.asarray(scene.mask(64)) > 127
        unit = ControlUnit(controlnet, image=picture, module="canny", pixel_perfect=True)
        ruled = lab.txt2img(prompt, steps=steps, cfg=cfg, seed=k, control=unit)
        plain = lab.txt2img(prompt, steps=steps, cfg=cfg, seed=k)
        off = lab.txt2img(prompt, steps=steps, cfg=cfg, seed=k, control=unit.replace(weight=0.0))
        records.append({"prompt": prompt, "seed": k, "iou": iou(silhouette(ruled.image), truth),
                        "plain_iou": iou(silhouette(plain.image), truth), "color": judge(ruled.image).color,
                        "wanted": color, "weight0_equal": bool(np.array_equal(np.asarray(off.image),
                                                                               np.asarray(plain.image))),
                        "scene_iou": iou(silhouette(picture), truth),
                        "vae_iou": iou(silhouette(vae_round_trip(lab, picture)), truth),
                        "images": (picture, ruled.control_maps[0], ruled.image, truth)})
    return summarize(records)


def vae_round_trip(lab, picture):
    """The picture encoded and decoded by the lab's VAE: the sharpest a generation can be, for the measure's
    ceiling."""
    import torch

    vae = lab.components["vae"]
    x = torch.from_numpy(np.array(picture)).permute(2, 0, 1)[None].to(vae.device, vae.dtype) / 127.5 - 1
    with torch.no_grad():
        y = vae.decode(vae.encode(x).latent_dist.mean).sample  # (1, 3, H, W)
    return ((y[0].permute(1, 2, 0).float().clamp(-1, 1) + 1) * 127.5).round().byte().cpu().numpy()


def summarize(records: list) -> dict:
    ious = np.array([r["iou"] for r in records])
    return {"n": len(records), "iou_mean": round(float(ious.mean()), 4),
            "iou_at_least_0.8": round(float((ious >= IOU_GOAL).mean()), 4),
            "plain_iou_mean": round(float(np.mean([r["plain_iou"] for r in records])), 4),
            "measure_on_the_scenes": round(float(np.mean([r["scene_iou"] for r in records])), 4),
            "measure_on_vae_round_trips": round(float(np.mean([r["vae_iou"] for r in records])), 4),
            "color_kept": round(float(np.mean([r["color"] == r["wanted"] for r in records])), 4),
            "weight0_equals_plain": round(float(np.mean([r["weight0_equal"] for r in records])), 4),
            "records": records}


def overlay(output, truth) -> np.ndarray:
    """The output with the control's silhouette outline drawn over it in magenta."""
    out = np.array(output, np.uint8)
    edge = truth & ~np.pad(truth, 1)[2:, 1:-1] | truth & ~np.pad(truth, 1)[:-2, 1:-1] \
        | truth & ~np.pad(truth, 1)[1:-1, 2:] | truth & ~np.pad(truth, 1)[1:-1, :-2]
    out[edge] = (255, 0, 255)
    return out


def grid_image(records: list, rows: int = 8, scale: int = 2):
    """Rows of (scene picture, control map, output, output with the control's outline), the first `rows`."""
    from PIL import Image

    lines = [np.concatenate([np.asarray(p), np.asarray(c), np.asarray(o), overlay(o, t)], axis=1)
             for p, c, o, t in (r["images"] for r in records[:rows])]
    image = Image.fromarray(np.concatenate(lines, axis=0))
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)


def main(argv=None):
    import torch

    from ..files import save_json
    from ..loading import open as open_lab

    parser = argparse.ArgumentParser(prog="python -m labkit.toy.control_eval", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--controlnet", default="toy-controlnet")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=SAMPLES)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    scores = evaluate(open_lab("toy"), args.n, args.steps, controlnet=args.controlnet)
    args.out.mkdir(parents=True, exist_ok=True)
    grid_image(scores["records"]).save(args.out / "toy-controlnet.png")
    shown = {k: v for k, v in scores.items() if k != "records"}
    shown["samples"] = [{k: v for k, v in r.items() if k != "images"} for r in scores["records"]]
    shown["command"] = f"python -m labkit.toy.control_eval --n {args.n} --steps {args.steps}"
    save_json(shown, args.out / "toy-controlnet.json")
    print(json.dumps({k: v for k, v in shown.items() if k != "samples"}))


if __name__ == "__main__":
    main()
