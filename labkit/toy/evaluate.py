"""Prompt adherence of a text-to-image model on the toy world: generate every evaluation prompt with a few seeds,
judge each picture with the classical judge, and report how often color, shape, background and style are right.

    python -m labkit.toy.evaluate toy --out benchmarks/toy_scores.json --seeds 3
"""

import argparse
import json
import math
from pathlib import Path
from time import perf_counter

from ..errors import BadInput
from ..files import save_json
from .judge import compare, judge
from .world import STYLES, parse_prompt
from .world import prompt_set as world_prompt_set

ATTRIBUTES = ("color", "shape", "background", "style")


def prompt_set(n_per=1, seed=0, style=None) -> list[str]:
    """The evaluation prompts: every shape x color x background combination (72), canonical caption first."""
    return world_prompt_set(n_per=n_per, seed=seed, style=style)


def spread_prompts(n=24, stride=3, style=None) -> list[str]:
    """n prompts of the set, every `stride`-th shape-colour pair with the backgrounds taking turns (the set is
    ordered shape, colour, background, so prompt stride * k + k mod 3 has background k mod 3)."""
    prompts = prompt_set(style=style)
    return [prompts[stride * k + k % 3] for k in range(n)]


def grid_prompts(style=None) -> list[str]:
    """Twelve prompts for a sample grid: every shape three times, red, yellow and blue objects, every background."""
    return spread_prompts(12, 6, style)


def wanted(prompt: str) -> dict:
    """What a prompt asks of the main object: {shape, color, background, style}; "plain" when no style word.
    Attributes the prompt does not name are None (and not scored)."""
    asked = parse_prompt(prompt)
    return {"shape": asked["shape"], "color": asked["color"], "background": asked["background"],
            "style": asked["style"] or "plain"}


def evaluate(name_or_lab, prompts=None, seeds=(0, 1, 2), steps=20, cfg=4.0, sampler="DPM++ 2M", refiner=None,
             style=None, loras=None, out=None) -> dict:
    """Generate each prompt x seed, judge every picture, and return the scores.

    `name_or_lab`: an embedded model name (opened with `labkit.open`) or a `Lab`. `prompts`: defaults to
    `prompt_set(style=style)` (`style` only picks that default set). `refiner`: a Lab or model name, passed to
    txt2img. `loras`: {name: weight} of LoRAs on the Lab's LoRA search path, added to every prompt as
    `<lora:name:weight>` tags (active for those calls only, as in any prompt). `out`: a JSON results file; the
    scores (without the failure list) are merged into it under `result_key(...)`, other entries kept.

    Returns {"model", "color", "shape", "background", "style" (accuracies, None where never asked), "overall"
    (share of pictures with every asked attribute right), "count", "seconds", "settings", "failures"}; each
    failure is {"prompt", "seed", "wrong", "wanted", "verdict"}.
    """
    if prompts is not None and style is not None:
        raise BadInput("evaluate(style=...) picks the default prompt set; with your own `prompts`, write the "
                       "style word into them instead.")
    lab, refiner = _open(name_or_lab), _open(refiner) if refiner is not None else None
    prompts = list(prompt_set(style=style) if prompts is None else prompts)
    loras = dict(loras or {})
    settings = {"seeds": list(seeds), "steps": steps, "cfg": cfg, "sampler": sampler,
                "refiner": _model_name(refiner, None) if refiner is not None else None, "style": style,
                "loras": loras}
    start = perf_counter()
    records = []
    for prompt in prompts:
        asked = wanted(prompt)
        for seed, image in _generate(lab, prompt + lora_tags(loras), seeds, steps=steps, cfg=cfg, sampler=sampler,
                                     refiner=refiner):
            verdict = judge(image)
            records.append((prompt, seed, asked, verdict, compare(verdict, asked)))
    scores = {"model": _model_name(lab, name_or_lab), **summarize(records),
              "seconds": round(perf_counter() - start, 2), "settings": settings,
              "failures": [_failure(*r) for r in records if not all(r[4].values())]}
    if out is not None:
        merge_results(out, result_key(scores["model"], settings["refiner"], style, loras), scores)
    return scores


def inpaint_fidelity(name_or_lab="toy-inpaint", n=24, seed=0, steps=20, cfg=4.0, sampler="DPM++ 2M",
                     mask_blur=4, out=None) -> dict:
    """Repaint one object of a world picture in another color and measure what stays put.

    For n single-object scenes (world seed 7): mask = the object's silhouette grown by 2 px, prompt = the
    scene's caption with a new color. Reports the PSNR of the pixels outside the blurred mask against the
    original, for labkit's result (A1111's overlay pastes the original back there: exact unless it breaks) and
    for the inpainting pipeline alone (the model and VAE round trip, no overlay), and how often the judge sees
    the new color. PSNR of identical pixels is reported as None in `psnr_*` lists and counted in `exact`."""
    import numpy as np

    lab = _open(name_or_lab)
    start, rows = perf_counter(), []
    for i, (image, mask, prompt, color) in enumerate(inpaint_cases(n)):
        result = lab.inpaint(image, mask, prompt, seed=seed + i, steps=steps, cfg=cfg, sampler=sampler,
                             mask_blur=mask_blur)
        raw = _pipeline_only(lab, image, mask, result.params)
        outside = np.asarray(_blurred(lab, mask, mask_blur)) == 0  # (64, 64)
        rows.append({"prompt": prompt, "seed": seed + i, "psnr": _psnr(result.image, image, outside),
                     "psnr_pipeline": _psnr(raw, image, outside), "color": judge(result.image).color == color})
    finite = [r["psnr_pipeline"] for r in rows if r["psnr_pipeline"] is not None]
    scores = {"model": _model_name(lab, name_or_lab), "count": n, "seconds": round(perf_counter() - start, 2),
              "settings": {"steps": steps, "cfg": cfg, "sampler": sampler, "mask_blur": mask_blur, "seed": seed},
              "exact_outside": sum(r["psnr"] is None for r in rows),
              "min_psnr_outside": min((r["psnr"] for r in rows if r["psnr"] is not None), default=None),
              "pipeline_psnr_outside_mean": round(float(np.mean(finite)), 2) if finite else None,
              "pipeline_psnr_outside_min": round(float(np.min(finite)), 2) if finite else None,
              "new_color": round(sum(r["color"] for r in rows) / n, 4)}
    if out is not None:
        merge_results(out, f"{scores['model']} (inpaint fidelity)", scores)
    return scores


def inpaint_cases(n):
    """The repaint tasks of `inpaint_fidelity`, in order: (picture, mask, prompt, new color) for n single-object
    scenes of world seed 7, the mask being the object's silhouette grown by 2 px, the prompt its caption with
    another color."""
    from dataclasses import replace

    import numpy as np

    from .world import COLORS, Scene, canonical_caption, inpaint_mask, sample_scene

    rng = np.random.default_rng(7)
    for _ in range(n):
        scene = sample_scene(rng, allow_two=False)
        obj = scene.objects[0]
        color = [c for c in COLORS if c != obj.color][rng.integers(len(COLORS) - 1)]
        new = Scene((replace(obj, color=color),), scene.background)
        yield scene.render(64), inpaint_mask(scene), canonical_caption(new), color


def inpaint_grid(name_or_lab="toy-inpaint", n=6, seed=0, columns=6, scale=2, mask_blur=4, **kw):
    """A labelled contact sheet of the first n tasks of `inpaint_fidelity`: each task's picture, mask and
    result side by side (task i uses seed + i, as there). `kw` goes to inpaint (steps, cfg, sampler...)."""
    lab = _open(name_or_lab)
    images, captions = [], []
    for i, (image, mask, prompt, _) in enumerate(inpaint_cases(n)):
        result = lab.inpaint(image, mask, prompt, seed=seed + i, mask_blur=mask_blur, **kw).image
        images += [image, mask.convert("RGB"), result]
        captions += ["before", "mask", prompt]
    return contact_sheet(images, captions, columns, scale)


def _blurred(lab, mask, radius):
    from ..images import blur

    return blur(lab.pipeline("inpaint"), mask, radius)


def _pipeline_only(lab, image, mask, p):
    """The inpainting pipeline's own picture for the same recipe, without labkit's overlay."""
    import torch

    from .. import samplers

    pipe = lab.pipeline("inpaint")
    pipe.scheduler = samplers.make_scheduler(p.sampler, p.schedule, lab.scheduler_config)
    g = torch.Generator().manual_seed(p.seed)
    return pipe(p.prompt, image=image, mask_image=_blurred(lab, mask, p.mask_blur), num_inference_steps=p.steps,
                guidance_scale=p.cfg, generator=g, height=64, width=64, strength=1.0).images[0]


def _psnr(a, b, where):
    """PSNR in dB between two pictures over the pixels `where` is True; None if they are identical there."""
    import numpy as np

    diff = np.asarray(a, np.float64)[where] - np.asarray(b, np.float64)[where]
    mse = float((diff**2).mean()) if diff.size else 0.0
    return None if mse == 0 else round(10 * np.log10(255**2 / mse), 2)


def summarize(records) -> dict:
    """Per-attribute accuracy, overall accuracy and count from (prompt, seed, wanted, verdict, checks) records."""
    checks = [r[4] for r in records]
    accuracy = {}
    for attribute in ATTRIBUTES:
        asked = [c[attribute] for c in checks if attribute in c]
        accuracy[attribute] = round(sum(asked) / len(asked), 4) if asked else None
    overall = round(sum(all(c.values()) for c in checks) / len(checks), 4) if checks else None
    return {**accuracy, "overall": overall, "count": len(checks)}


def result_key(model: str, refiner: str | None = None, style: str | None = None, loras=None) -> str:
    """The results-file key: "toy", "toy-xl+toy-xl-refiner", "toy (outlined)", "toy <lora:outline:1> (outlined)"."""
    key = (f"{model}+{refiner}" if refiner else model) + lora_tags(loras)
    return f"{key} ({style})" if style else key


def lora_tags(loras) -> str:
    """{"outline": 1.0} -> " <lora:outline:1>": the prompt tags that turn the LoRAs on for a call."""
    return "".join(f" <lora:{name}:{weight:g}>" for name, weight in (loras or {}).items())


def merge_results(path, key: str, scores: dict) -> dict:
    """Write `scores` (less the failure list) under `key` in the JSON file at `path`, keeping its other keys;
    written to a temporary file then renamed, so a crash never leaves half a file. Returns the whole table."""
    path = Path(path)
    table = json.loads(path.read_text()) if path.exists() else {}
    table[key] = {k: v for k, v in scores.items() if k != "failures"} | {"failed": len(scores.get("failures", []))}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_json(table, path, sort_keys=True)
    return table


def format_scores(scores: dict) -> str:
    """A small text table of the scores."""
    s = scores["settings"]
    lines = [f"{scores['model']}: {scores['count']} pictures in {scores['seconds']:.1f} s "
             f"({s['steps']} steps, cfg {s['cfg']}, {s['sampler']}, seeds {s['seeds']})"]
    for key in (*ATTRIBUTES, "overall"):
        value = scores[key]
        lines.append(f"  {key:<11} {'-' if value is None else f'{value:.3f}'}")
    lines.append(f"  failures    {len(scores['failures'])}")
    return "\n".join(lines)


def sample_grid(name_or_lab, prompts, seed=0, columns=None, scale=2, **kw):
    """A labelled contact sheet (PIL image): each prompt's picture for `seed`, enlarged `scale` times, with the
    prompt written under it. `kw` goes to txt2img (steps, cfg, sampler...)."""
    lab = _open(name_or_lab)
    images = [lab.txt2img(p, seed=seed, **kw).images[0] for p in prompts]
    return contact_sheet(images, prompts, columns, scale)


def contact_sheet(images, captions, columns=None, scale=2):
    """The images on a white sheet, enlarged `scale` times, `columns` to a row (default up to 6), each with its
    caption written under it (wrapped)."""
    from PIL import Image, ImageDraw, ImageFont

    images = [image.convert("RGB") for image in images]
    font = ImageFont.load_default()
    side = max(max(im.size) for im in images) * scale
    captions = [_wrap(caption, font, side - 4) for caption in captions]
    line = font.getbbox("Ag")[3] + 2
    cell_h = side + 4 + line * max(len(c) for c in captions)
    columns = columns or min(len(images), 6)
    rows = math.ceil(len(images) / columns)
    sheet = Image.new("RGB", (columns * (side + 4), rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (image, caption) in enumerate(zip(images, captions)):
        x, y = (i % columns) * (side + 4) + 2, (i // columns) * cell_h
        sheet.paste(image.resize((image.width * scale, image.height * scale), Image.NEAREST), (x, y + 2))
        for k, text in enumerate(caption):
            draw.text((x, y + side + 3 + k * line), text, fill="black", font=font)
    return sheet


# ---- helpers -----------------------------------------------------------------------------------------------

def _save(image, path):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def _open(name_or_lab):
    if isinstance(name_or_lab, (str, Path)):
        from ..loading import open as open_model

        return open_model(str(name_or_lab))
    return name_or_lab


def lora_arg(text: str) -> tuple:
    """"outline" -> ("outline", 1.0); "outline:0.8" -> ("outline", 0.8)."""
    name, _, weight = text.partition(":")
    try:
        return name, float(weight) if weight else 1.0
    except ValueError:
        raise BadInput(f"--lora {text!r}: write NAME or NAME:WEIGHT, e.g. outline:0.8.") from None


def _model_name(lab, given) -> str:
    if isinstance(given, (str, Path)):
        return str(given)
    return getattr(lab, "name", "") or getattr(lab, "family", "") or "model"


def _generate(lab, prompt, seeds, **kw):
    """(seed, image) for each seed, one batched txt2img call per run of consecutive seeds
    (image i of a batch gets seed s0 + i)."""
    for run in _consecutive_runs(seeds):
        result = lab.txt2img(prompt, seed=run[0], batch_size=len(run), **kw)
        yield from zip(result.seeds, result.images)


def _consecutive_runs(seeds) -> list[list[int]]:
    """[0, 1, 2, 7, 8] -> [[0, 1, 2], [7, 8]]."""
    runs = []
    for seed in map(int, seeds):
        if runs and seed == runs[-1][-1] + 1:
            runs[-1].append(seed)
        else:
            runs.append([seed])
    return runs


def _failure(prompt, seed, asked, verdict, checks) -> dict:
    return {"prompt": prompt, "seed": int(seed), "wrong": [k for k, ok in checks.items() if not ok],
            "wanted": asked, "verdict": verdict.as_dict()}


def _wrap(text, font, width) -> list[str]:
    """Words of `text` in lines no wider than `width` pixels in `font`."""
    lines = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m labkit.toy.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="an embedded model name (labkit.models()) or a checkpoint path")
    parser.add_argument("--out", help="JSON results file to merge the scores into")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per prompt (default 3)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=4.0)
    parser.add_argument("--sampler", default="DPM++ 2M")
    parser.add_argument("--style", choices=list(STYLES), help="evaluate the styled prompt set")
    parser.add_argument("--refiner", help="a refiner model to hand the latents to")
    parser.add_argument("--lora", action="append", default=[], metavar="NAME[:WEIGHT]",
                        help="a LoRA from the LoRA search path, active during the evaluation (repeatable)")
    parser.add_argument("--grid", help="also write a sample grid (12 prompts of the set, seed 0; with --inpaint: "
                                       "the first 6 tasks' picture, mask and result) to this PNG")
    parser.add_argument("--inpaint", action="store_true", help="measure inpainting fidelity instead (n = 24 x seeds)")
    args = parser.parse_args(argv)
    if args.inpaint:
        scores = inpaint_fidelity(args.model, n=24 * args.seeds, steps=args.steps, cfg=args.cfg, sampler=args.sampler,
                                  out=args.out)
        print(json.dumps(scores, indent=2))
        if args.grid:
            _save(inpaint_grid(args.model, steps=args.steps, cfg=args.cfg, sampler=args.sampler), args.grid)
        return scores
    loras = dict(lora_arg(text) for text in args.lora)
    scores = evaluate(args.model, seeds=range(args.seeds), steps=args.steps, cfg=args.cfg, sampler=args.sampler,
                      refiner=args.refiner, style=args.style, loras=loras, out=args.out)
    print(format_scores(scores))
    if args.grid:
        refiner = {"refiner": _open(args.refiner)} if args.refiner else {}
        prompts = [p + lora_tags(loras) for p in grid_prompts(style=args.style)]
        _save(sample_grid(args.model, prompts, seed=0, steps=args.steps, cfg=args.cfg, sampler=args.sampler,
                          **refiner), args.grid)
    return scores


if __name__ == "__main__":
    main()
