"""A LoRA's effect: its weight change per block, as numbers and a heat map, and an A/B pixel difference."""

import math

BLOCK_ORDER = ("TE", "TE1", "TE2", "BASE", "IN", "M", "OUT")  # the order blocks are listed in


def block_effect(patches, te_weight: float, unet_weight: float, original) -> dict:
    """{block: ||dW|| / ||W||} of a LoRA's patches at the given weights; `original(target)` gives a weight as it
    was before any LoRA (a folded weight's own value includes them)."""
    import torch

    sums = {}  # block -> [sum of dW^2, sum of W^2]
    with torch.no_grad():
        for patch in patches:
            target = patch.target
            w0 = original(target).to(target.weight.device, torch.float32)
            weight = unet_weight if target.component == "unet" else te_weight
            dw = weight * patch.delta(w0)
            block = sums.setdefault(target.block, [0.0, 0.0])
            block[0] += float(dw.square().sum())
            block[1] += float(w0.square().sum())
    ordered = sorted(sums, key=lambda b: (BLOCK_ORDER.index(b.rstrip("0123456789")), b))
    return {b: math.sqrt(sums[b][0] / sums[b][1]) if sums[b][1] else 0.0 for b in ordered}


def effect_heatmap(effects: dict):
    """A matplotlib Figure: one row per LoRA, one column per block, colour = ||dW|| / ||W||.

    `effects`: {lora name: {block: value}} as `LoraManager.effect` returns; blocks a LoRA does not touch are
    blank. Built on matplotlib.figure.Figure (no pyplot state), so it shows in a notebook and saves anywhere."""
    import numpy as np

    from ..internals.plots import figure

    blocks = list(dict.fromkeys(b for effect in effects.values() for b in effect))
    names = list(effects)
    values = np.full((len(names), len(blocks)), np.nan)  # (LoRAs, blocks)
    for i, name in enumerate(names):
        for j, block in enumerate(blocks):
            values[i, j] = effects[name].get(block, np.nan)
    fig = figure(max(4.0, 0.45 * len(blocks) + 2), 0.5 * len(names) + 1.6)
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(values), aspect="auto", cmap="magma")
    ax.set_xticks(range(len(blocks)), blocks, rotation=90, fontsize=8)
    ax.set_yticks(range(len(names)), names)
    ax.set_title("LoRA weight change per block, ||ΔW|| / ||W||")
    fig.colorbar(image, ax=ax)
    return fig


def difference(a, b, gain: float = 4.0):
    """|a - b| per pixel and channel, times `gain`, as an RGB PIL image (black = identical)."""
    import numpy as np
    from PIL import Image

    diff = np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16))  # (H, W, 3)
    return Image.fromarray(np.clip(diff * gain, 0, 255).astype(np.uint8))
