"""Cross-attention maps: which part of the picture looks at which prompt token (prompt-to-prompt style).

    with capture(lab) as store:                       # the UNet's cross-attention layers record as they run
        r = lab.txt2img("a red circle", seed=1)       # same picture as without capture
    fig = plot_token_maps(r.image, maps_for(lab, store, "a red circle"))

`capture` swaps the processor of every cross-attention layer (`attn2`) for one that writes the attention out as
softmax(Q Kᵀ · scale) V, the math of diffusers' default processor, and adds the probabilities, averaged over
heads, to a per-layer sum over steps. Self-attention (`attn1`) keeps its processor; every processor comes back
on exit, also after an error.
"""

import math
import warnings
from contextlib import contextmanager

from ..errors import BadInput

# processors whose math the recording processor reproduces (anything else, e.g. IP-Adapter's, it would change)
PLAIN_PROCESSORS = ("AttnProcessor", "AttnProcessor2_0", "XFormersAttnProcessor")


class AttentionStore:
    """What `capture` records, per cross-attention layer (names as in `unet.attn_processors`, less `.processor`):

    - `sums[layer]`: (P, T, h, w) float32, attention probabilities summed over steps; P pictures (every picture
      of the batch; with CFG the conditional half only), T text tokens (77 per prompt chunk), h x w the layer's
      latent resolution; probabilities over T sum to 1 at every pixel and step;
    - `counts[layer]`: how many steps were summed;
    - `by_step[layer][step]`: (P, T, h, w) of each step, only with `per_step=True`.

    `cfg=None` finds the conditional half itself: a batch whose two halves carry different text embeddings is
    [negative, positive] (diffusers' order); pass cfg=True/False where that guess could fail (a direct pipeline
    call with different prompts per picture and no CFG).
    """

    def __init__(self, vae_scale: int = 8, per_step: bool = False, cfg: bool | None = None):
        self.vae_scale = vae_scale
        self.per_step = per_step
        self.cfg = cfg
        self.sums, self.counts, self.by_step = {}, {}, {}
        self.step = -1  # UNet calls seen so far, minus one: the current step
        self.latent_size = None  # (h, w) of the UNet's input

    @property
    def layers(self) -> list[str]:
        return list(self.sums)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the picture the recorded run made."""
        if self.latent_size is None:
            raise BadInput("Nothing recorded yet: generate a picture inside `with capture(lab) as store:`.")
        return self.latent_size[0] * self.vae_scale, self.latent_size[1] * self.vae_scale

    def add(self, layer: str, probs, context) -> None:
        """Record one layer's probabilities (N, heads, L, T) for the batch's text embeddings `context` (N, T, D)."""
        import torch

        with torch.no_grad():
            maps = probs.float().mean(1)  # (N, L, T)
            if self._guided(context):
                maps = maps[maps.shape[0] // 2:]  # (P, L, T): the conditional half
            h, w = self._grid(maps.shape[1])
            maps = maps.transpose(1, 2).reshape(maps.shape[0], maps.shape[2], h, w)  # (P, T, h, w)
            if layer in self.sums and self.sums[layer].shape != maps.shape:
                raise BadInput(f"Layer {layer} recorded {tuple(self.sums[layer].shape)} before, now "
                               f"{tuple(maps.shape)}: use one `capture` per picture size and batch.")
            self.sums[layer] = self.sums[layer] + maps if layer in self.sums else maps.clone()
            self.counts[layer] = self.counts.get(layer, 0) + 1
            if self.per_step:
                self.by_step.setdefault(layer, {})[self.step] = maps.clone()

    def mean(self, layer: str, steps=None, picture: int = 0):
        """One layer's maps (T, h, w), averaged over all recorded steps or over `steps` (needs per_step=True)."""
        import torch

        if steps is None:
            return (self.sums[layer][picture] / self.counts[layer]).cpu()
        if not self.per_step:
            raise BadInput("steps= needs the maps of each step: record with `capture(lab, per_step=True)`.")
        steps = list(steps)
        missing = sorted(set(steps) - set(self.by_step[layer]))
        if missing or not steps:
            raise BadInput(f"steps={steps}: recorded steps are {sorted(self.by_step[layer])}.")
        return torch.stack([self.by_step[layer][s][picture] for s in steps]).mean(0).cpu()  # (T, h, w)

    def _guided(self, context) -> bool:
        import torch

        if self.cfg is not None:
            return self.cfg
        n = context.shape[0]
        return n % 2 == 0 and not torch.equal(context[: n // 2], context[n // 2:])

    def _grid(self, length: int) -> tuple[int, int]:
        """(h, w) of a layer whose queries are `length` pixels: the latent size divided by a power of 2."""
        if self.latent_size is None:
            raise BadInput("The recording processor ran outside a UNet call; use it through `capture(lab)`.")
        height, width = self.latent_size
        for k in range(8):
            h, w = math.ceil(height / 2 ** k), math.ceil(width / 2 ** k)
            if h * w == length:
                return h, w
        raise BadInput(f"A cross-attention layer has {length} queries, which no downscaled {height}x{width} "
                       f"latent grid gives.")


class RecordingProcessor:
    """diffusers' default attention math written out (softmax(Q Kᵀ · scale) V), recording the probabilities."""

    def __init__(self, store: AttentionStore, layer: str):
        self.store, self.layer = store, layer

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)  # (N, L, C)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states  # (N, T, D)
        if encoder_hidden_states is not None and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)

        out, probs = attend(attn, attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context),
                            attention_mask)
        if encoder_hidden_states is not None:
            self.store.add(self.layer, probs, encoder_hidden_states)

        out = attn.to_out[1](attn.to_out[0](out))  # linear, dropout
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def attend(attn, query, key, value, attention_mask=None):
    """Multi-head attention of (N, L, C) queries over (N, T, C) keys/values: (output (N, L, C), probabilities
    (N, heads, L, T) in float32)."""
    n, heads = query.shape[0], attn.heads
    split = lambda x: x.view(n, -1, heads, x.shape[-1] // heads).transpose(1, 2)  # noqa: E731 (N, heads, ., d)
    q, k, v = split(query), split(key), split(value)
    if attn.norm_q is not None:
        q = attn.norm_q(q)
    if attn.norm_k is not None:
        k = attn.norm_k(k)
    scores = (q.float() @ k.float().transpose(-1, -2)) * attn.scale  # (N, heads, L, T)
    if attention_mask is not None:
        mask = attn.prepare_attention_mask(attention_mask, k.shape[2], n)  # (N * heads, 1 or L, T)
        scores = scores + mask.view(n, heads, -1, mask.shape[-1]).float()
    probs = scores.softmax(-1)  # (N, heads, L, T)
    out = (probs.to(v.dtype) @ v).transpose(1, 2).reshape(n, -1, heads * v.shape[-1])  # (N, L, C)
    return out, probs


@contextmanager
def capture(lab, *, per_step: bool = False, cfg: bool | None = None):
    """Record the cross-attention of every UNet call inside the block; yields the `AttentionStore`.

    `lab`: a Lab (or a diffusers pipeline); only its own UNet records (a refiner's is another: capture it on
    its own). Only cross-attention processors are replaced, and only plain ones (`PLAIN_PROCESSORS`); all are
    put back on exit. A store sums over every step of every run in the block: use one block per picture.
    `per_step=True` also keeps each step's maps (memory: steps x layers maps).
    """
    unet, vae_scale = _parts(lab)
    store = AttentionStore(vae_scale, per_step, cfg)
    original = unet.attn_processors  # {"...attn2.processor": processor}
    swapped = {name: RecordingProcessor(store, name[: -len(".processor")]) if cross else processor
               for (name, processor), cross in zip(original.items(), _cross_flags(unet, original))}

    def on_call(module, args, kwargs):
        sample = args[0] if args else kwargs["sample"]  # (N, 4, h, w)
        store.latent_size = tuple(sample.shape[-2:])
        store.step += 1

    hook = unet.register_forward_pre_hook(on_call, with_kwargs=True)
    try:
        unet.set_attn_processor(dict(swapped))  # a copy: diffusers pops the entries it uses
        yield store
    finally:
        hook.remove()
        unet.set_attn_processor(dict(original))


def _parts(lab):
    """(UNet, VAE scale factor) of a Lab or a pipeline."""
    components = getattr(lab, "components", None)
    unet = components["unet"] if isinstance(components, dict) else getattr(lab, "unet", None)
    if unet is None:
        raise BadInput(f"capture() needs a Lab or a diffusers pipeline with a UNet, not {type(lab).__name__}.")
    return unet, getattr(lab, "vae_scale", None) or getattr(lab, "vae_scale_factor", 8)


def _cross_flags(unet, processors: dict) -> list[bool]:
    """For each processor, whether its Attention module is a cross-attention layer; refuses processors whose
    math the recording processor would not reproduce."""
    flags = []
    for name, processor in processors.items():
        cross = bool(getattr(unet.get_submodule(name[: -len(".processor")]), "is_cross_attention", False))
        kind = type(processor).__name__
        if cross and kind not in PLAIN_PROCESSORS:
            hint = ("this UNet is already inside `capture`" if isinstance(processor, RecordingProcessor) else
                    "restore the default with `unet.set_default_attn_processor()` (this drops e.g. IP-Adapter)")
            raise BadInput(f"Layer {name} uses {kind}, whose attention `capture` cannot reproduce: {hint}.")
        flags.append(cross)
    return flags


# ---- maps ---------------------------------------------------------------------------------------------------


def token_maps(store: AttentionStore, size=None, layers=None, steps=None, picture: int = 0):
    """Attention per token over the picture: (T, H, W), T = 77 per prompt chunk.

    Each layer's maps (averaged over steps, or over `steps` when recorded per_step) are upsampled (bilinear) to
    `size` (int or (H, W); default the picture's size), then averaged over layers with equal weight, so the
    maps still sum to ~1 over tokens at each pixel. `layers`: names or name fragments ("up_blocks", "mid_block",
    "down_blocks.2") of the layers to keep; `picture`: which picture of the batch.
    """
    import torch
    import torch.nn.functional as F

    chosen = _select(store, layers)
    size = store.image_size if size is None else (size, size) if isinstance(size, int) else tuple(size)
    if not 0 <= picture < store.sums[chosen[0]].shape[0]:
        raise BadInput(f"picture={picture}: the store holds {store.sums[chosen[0]].shape[0]} picture(s).")
    up = [F.interpolate(store.mean(layer, steps, picture)[None], size=size, mode="bilinear",
                        align_corners=False)[0] for layer in chosen]  # each (T, H, W)
    return torch.stack(up).mean(0)  # (T, H, W)


def _select(store: AttentionStore, layers) -> list[str]:
    if not store.sums:
        raise BadInput("Nothing recorded yet: generate a picture inside `with capture(lab) as store:`.")
    if layers is None:
        return store.layers
    fragments = [layers] if isinstance(layers, str) else list(layers)
    chosen = [name for name in store.layers if any(f in name for f in fragments)]
    if not chosen:
        raise BadInput(f"layers={layers!r} matches none of the recorded layers: {store.layers}.")
    return chosen


def prompt_tokens(lab, prompt: str, emphasis: str = "Original") -> list[tuple[int, str]]:
    """(position in the 77-token window, token text) of the prompt's own tokens: no BOS, EOS or padding.

    Uses the tokenizer whose tokens the UNet sees first (SDXL: CLIP-L; both SDXL tokenizers split text alike).
    Weights and BREAK are read as A1111 does; `<lora:...>` tags are dropped. Only the first 75-token chunk
    has positions here; a longer prompt warns.
    """
    from ..prompts import extract_networks, schedule, tokenize_chunks

    text = extract_networks(prompt)[0]
    if len(schedule(text, 100)) > 1:
        raise BadInput(f"{prompt!r} changes during the run ([from:to:when], [a|b]): pass the prompt as it reads "
                       f"at the steps you look at.")
    tokenizer = lab.components.get("tokenizer") or lab.components["tokenizer_2"]
    chunks = tokenize_chunks(tokenizer, text, emphasis)
    if len(chunks) > 1:
        warnings.warn(f"The prompt fills {len(chunks)} chunks of 75 tokens; maps_for shows the first only.",
                      stacklevel=3)
    ids = chunks[0].ids
    end = ids.index(tokenizer.eos_token_id, 1)  # the EOS after the prompt's tokens
    words = tokenizer.convert_ids_to_tokens(ids[1:end])
    return [(i + 1, word.replace("</w>", "")) for i, word in enumerate(words)]


def maps_for(lab, store: AttentionStore, prompt: str, *, size=None, layers=None, steps=None, picture: int = 0,
             emphasis: str = "Original") -> list[tuple[str, object]]:
    """[(token, map (H, W))] for the prompt's own tokens in order (first 75-token chunk); see `token_maps`."""
    maps = token_maps(store, size, layers, steps, picture)  # (T, H, W)
    return [(word, maps[i]) for i, word in prompt_tokens(lab, prompt, emphasis)]


def plot_token_maps(image, maps, columns: int = 6, alpha: float = 0.6, cmap: str = "jet"):
    """A matplotlib Figure: the picture, then each token's map over it, titled; each map is stretched to its
    own range (min -> 0, max -> 1), so compare where a token looks, not how much (that is `maps_for`'s values).

    `image`: a PIL image (or a Result); `maps`: [(token, (H, W) map)] as `maps_for` returns.
    """
    import torch

    from .plots import figure

    image = getattr(image, "image", image)
    width, height = image.size
    count = 1 + len(maps)
    columns = max(1, min(columns, count))
    rows = math.ceil(count / columns)
    fig = figure(2 * columns, 2.2 * rows)
    panels = [("picture", None), *maps]
    for i, (title, heat) in enumerate(panels):
        ax = fig.add_subplot(rows, columns, i + 1)
        ax.imshow(image)
        if heat is not None:
            heat = torch.as_tensor(heat).float().cpu()  # (H, W)
            heat = (heat - heat.min()) / (heat.max() - heat.min()).clamp_min(1e-12)  # 0..1 within this token
            ax.imshow(heat, cmap=cmap, alpha=alpha, vmin=0, vmax=1,
                      extent=(-0.5, width - 0.5, height - 0.5, -0.5), interpolation="bilinear")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    return fig
