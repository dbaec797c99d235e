"""How well the classical judge agrees with a person: the shipped `outline` LoRA's 216 evaluation pictures
(`toy`, the 72 outlined prompts x seeds 0-2, 20 steps DPM++ 2M, CFG 4) against hand labels made by eye on shuffled
contact sheets without prompts or the judge's verdicts, by two people independently
(benchmarks/outline_hand_labels.json). Writes
benchmarks/judge_vs_eye.json.

    .venv/bin/python benchmarks/judge_vs_eye.py
"""

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

HERE = Path(__file__).parent
LABELS = HERE / "outline_hand_labels.json"
SEEN_AS_OUTLINE = ("outlined", "broken outline")  # the eye's verdicts that count as the style


def weights_now(names) -> dict:
    """Short sha256 of each shipped file the labelled pictures came from."""
    from labkit.toy import loras, train

    where = {"outline.safetensors": loras.FOLDER, "vae.safetensors": train.WEIGHTS,
             "unet_toy.safetensors": train.WEIGHTS}
    return {name: hashlib.sha256((where[name] / name).read_bytes()).hexdigest()[:10] for name in names}


def verdicts(labels) -> list:
    """The judge's verdict on each labelled picture, generated as `labkit.toy.evaluate` does (seeds batched)."""
    import labkit
    from labkit.toy.judge import judge

    lab = labkit.open("toy")
    images = {}
    for prompt in dict.fromkeys(row["prompt"] for row in labels):
        result = lab.txt2img(f"{prompt} <lora:outline:1>", seed=0, batch_size=3, steps=20, cfg=4.0,
                             sampler="DPM++ 2M")
        images.update({(prompt, seed): image for seed, image in zip(result.seeds, result.images)})
    return [judge(images[row["prompt"], row["seed"]]) for row in labels]


def agreement(labels, found, who: int) -> dict:
    """Counts of shape and style right by labeller `who`'s eye, by the judge, and where the two agree."""
    counts = Counter()
    for row, verdict in zip(labels, found):
        eye = row["labellers"][who]
        asked = row["prompt"].split()[3]  # "an outlined red star on ..." -> "star"
        eye_shape, judge_shape = eye["shape"] == asked, verdict.shape == asked
        eye_style, judge_style = eye["style"] in SEEN_AS_OUTLINE, verdict.style == "outlined"
        counts.update({"eye shape right": eye_shape, "judge shape right": judge_shape,
                       "shape verdicts agree": eye_shape == judge_shape,
                       "eye sees an outline": eye_style, "eye sees an outline or maybe": eye["style"] != "not outlined",
                       "judge says outlined": judge_style, "style verdicts agree": eye_style == judge_style})
    return {key: counts[key] for key in sorted(counts)}


def between_labellers(labels) -> dict:
    """How often the two labellers agree: on whether the asked shape is there, and on whether it is outlined."""
    pairs = [(row["prompt"].split()[3], row["labellers"]) for row in labels]
    return {"shape verdicts agree": sum((a["shape"] == asked) == (b["shape"] == asked) for asked, (a, b) in pairs),
            "style verdicts agree": sum((a["style"] in SEEN_AS_OUTLINE) == (b["style"] in SEEN_AS_OUTLINE)
                                        for _, (a, b) in pairs)}


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    record = json.loads(LABELS.read_text())
    labels = record["labels"]
    now = weights_now(record["weights"])
    if now != record["weights"]:
        print(f"warning: the weights changed since the labels were made ({record['weights']} -> {now}); the "
              f"labels describe other pictures")
    found = verdicts(labels)
    per_labeller = [agreement(labels, found, who) for who in range(len(labels[0]["labellers"]))]
    result = {"pictures": len(labels), "weights": now, "labels_made_on": record["weights"],
              "labellers": per_labeller, "between labellers": between_labellers(labels)}
    (HERE / "judge_vs_eye.json").write_text(json.dumps(result, indent=1) + "\n")
    for key in per_labeller[0]:
        counts = " ".join(f"{counts[key]:4d} ({counts[key] / len(labels):6.1%})" for counts in per_labeller)
        print(f"{key:32s} {counts}   (labeller 1, 2; of {len(labels)})")
    for key, value in result["between labellers"].items():
        print(f"labellers' {key:21s} {value:4d} ({value / len(labels):6.1%})")

if __name__ == "__main__":
    main()
