"""Pictures of a LoRA's effect: a heat map of per-block weight change and an A/B pixel difference."""


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
