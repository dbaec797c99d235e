"""How well the classical judge agrees with people: the shipped `outline` LoRA's 216 evaluation pictures (`toy`,
the 72 outlined prompts x seeds 0-2, 20 steps DPM++ 2M, CFG 4) against hand labels made by two people
independently, on shuffled contact sheets without prompts or the judge's verdicts
(benchmarks/outline_hand_labels.json). The judge is run with and without its gap closing. Writes
benchmarks/judge_vs_eye.json (the counts, and every picture's verdicts).

    .venv/bin/python benchmarks/judge_vs_eye.py [--tiny] [--out DIR]

--tiny judges only the pictures of the first prompts (the same code on a handful of pictures, in seconds).
"""

import argparse
import hashlib
import json
import os
from collections import Counter
from pathlib import Path

HERE = Path(__file__).parent
LABELS = HERE / "outline_hand_labels.json"
SEEN_AS_OUTLINE = ("outlined", "broken outline")  # the eye's verdicts that count as the style
JUDGES = {"judge": True, "judge without gap closing": False}  # name: close_gaps
FULL = {"prompts": None}  # None: all 72 prompts (216 pictures)
TINY = {"prompts": 2}  # 6 pictures


def weights_now(names) -> dict:
    """Short sha256 of each shipped file the labelled pictures came from."""
    from labkit.toy import loras, registry

    where = {"outline.safetensors": loras.FOLDER, "vae.safetensors": registry.WEIGHTS,
             "unet_toy.safetensors": registry.WEIGHTS}
    return {name: hashlib.sha256((where[name] / name).read_bytes()).hexdigest()[:10] for name in names}


def pictures(labels) -> list:
    """Each labelled picture, generated as `labkit.toy.evaluate` does (the three seeds of a prompt in one batch)."""
    import labkit

    lab = labkit.open("toy")
    images = {}
    for prompt in dict.fromkeys(row["prompt"] for row in labels):
        result = lab.txt2img(f"{prompt} <lora:outline:1>", seed=0, batch_size=3, steps=20, cfg=4.0,
                             sampler="DPM++ 2M")
        images.update({(prompt, seed): image for seed, image in zip(result.seeds, result.images)})
    return [images[row["prompt"], row["seed"]] for row in labels]


def asked_shape(row) -> str:
    from labkit.toy.evaluate import wanted

    return wanted(row["prompt"])["shape"]


def agreement(labels, found, who: int) -> dict:
    """Counts of shape and style right by labeller `who`'s eye, by the judge (`found`: its verdicts), and where
    the two agree."""
    counts = Counter()
    for row, verdict in zip(labels, found):
        eye, asked = row["labellers"][who], asked_shape(row)
        eye_shape, judge_shape = eye["shape"] == asked, verdict.shape == asked
        eye_style, judge_style = eye["style"] in SEEN_AS_OUTLINE, verdict.style == "outlined"
        counts.update({"eye shape right": eye_shape, "judge shape right": judge_shape,
                       "shape verdicts agree": eye_shape == judge_shape,
                       "eye sees an outline": eye_style, "eye sees an outline or maybe": eye["style"] != "not outlined",
                       "judge says outlined": judge_style, "style verdicts agree": eye_style == judge_style})
    return {key: counts[key] for key in sorted(counts)}


def between_labellers(labels) -> dict:
    """How often the two labellers agree: on whether the asked shape is there, and on whether it is outlined."""
    pairs = [(asked_shape(row), row["labellers"]) for row in labels]
    return {"shape verdicts agree": sum((a["shape"] == asked) == (b["shape"] == asked) for asked, (a, b) in pairs),
            "style verdicts agree": sum((a["style"] in SEEN_AS_OUTLINE) == (b["style"] in SEEN_AS_OUTLINE)
                                        for _, (a, b) in pairs)}


def as_json(result) -> str:
    """The results file's text: indented, with one line per picture's verdicts."""
    head = json.dumps({key: value for key, value in result.items() if key != "verdicts"}, indent=1)
    rows = ",\n".join(f"  {json.dumps(row)}" for row in result["verdicts"])
    return f'{head[:-2]},\n "verdicts": [\n{rows}\n ]\n}}\n'


def first_prompts(labels, n) -> list:
    """The labels of the first `n` prompts (all of them when `n` is None)."""
    kept = list(dict.fromkeys(row["prompt"] for row in labels))[:n]
    return [row for row in labels if row["prompt"] in kept]


def main() -> None:
    from core import add_run_args, sizes  # here, not at the top: tests import this file without benchmarks/ on the path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_args(parser)
    args = parser.parse_args()
    work = sizes(args, FULL, TINY)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from labkit.toy.judge import judge

    record = json.loads(LABELS.read_text())
    labels = first_prompts(record["labels"], work["prompts"])
    now = weights_now(record["weights"])
    if now != record["weights"]:
        print(f"warning: the weights changed since the labels were made ({record['weights']} -> {now}); the "
              f"labels describe other pictures")
    images = pictures(labels)
    found = {name: [judge(image, close_gaps=close) for image in images] for name, close in JUDGES.items()}
    counts = {name: [agreement(labels, verdicts, who) for who in range(len(labels[0]["labellers"]))]
              for name, verdicts in found.items()}
    per_picture = [{"prompt": row["prompt"], "seed": row["seed"],
                    **{name: [found[name][i].shape, found[name][i].style] for name in JUDGES}}
                   for i, row in enumerate(labels)]
    result = {"pictures": len(labels), "weights": now, "labels_made_on": record["weights"],
              "between labellers": between_labellers(labels), "per labeller": counts, "verdicts": per_picture}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "judge_vs_eye.json").write_text(as_json(result))
    for name, per_labeller in counts.items():
        print(f"{name} (labeller 1, labeller 2; of {len(labels)} pictures)")
        for key in per_labeller[0]:
            print(f"  {key:30s}" + "".join(f" {c[key]:4d} ({c[key] / len(labels):6.1%})" for c in per_labeller))
    for key, value in result["between labellers"].items():
        print(f"labellers' {key:21s} {value:4d} ({value / len(labels):6.1%})")


if __name__ == "__main__":
    main()
