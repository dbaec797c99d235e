"""Prompt embeddings for diffusers' pipelines (`prompt_embeds=` ...), encoded as A1111's `sd_hijack_clip` does:

- each 75-token chunk (`labkit.prompts.chunks`) is encoded on its own and the chunks are concatenated along the
  token axis: (B, 77*k, width);
- weights multiply each token's embedding; "Original" emphasis then restores the chunk's mean.
"""

from typing import NamedTuple

from ..errors import BadInput
from ..families import LAYOUTS
from .chunks import CHUNK, Chunk, check_emphasis, tokenize_chunks
from .syntax import extract_networks, prompt_at, schedule


class _Encoder(NamedTuple):
    tokenizer: object
    model: object  # CLIPTextModel or CLIPTextModelWithProjection
    pooled: bool  # this encoder's text_embeds are the pooled embeddings (SDXL's encoder 2)


def encode(source, prompt: str, negative_prompt: str = "", clip_skip: int = 1, emphasis: str = "Original",
           layout: str | None = None, zero_empty_negative: bool | None = None, batch_size: int = 1) -> dict:
    """Embeddings of `prompt` and `negative_prompt` for a pipeline call, A1111-style.

    `source`: a Lab or its components dict. `layout`: "sd", "xl" or "refiner" (default: the Lab's, or read
    from which text encoders are present). `clip_skip` counts as A1111 does (1 = last layer): SD takes
    hidden_states[-clip_skip] then the final layer norm; xl/refiner take hidden_states[-(clip_skip + 1)] without
    it, as diffusers does (A1111 itself ignores Clip skip for SDXL unless its "sdxl_clip_l_skip" option is set).
    `emphasis`: "Original" (weights, then the chunk's mean restored), "No norm" (weights only), "Ignore"
    (brackets parsed, weights dropped) or "None" (no parsing: brackets and BREAK are plain text), as A1111.
    `<lora:...>` tags are removed (apply them with the Lab's LoRA tools); schedule syntax is not resolved here:
    use `encode_schedule`.

    Returns {"prompt_embeds": (B, 77k, width), "negative_prompt_embeds": same shape} and for xl/refiner also
    {"pooled_prompt_embeds": (B, proj), "negative_pooled_prompt_embeds": (B, proj)}, B = `batch_size`;
    k = the larger chunk count of the two prompts (the shorter is padded with empty-prompt chunks). The pooled
    embeddings are encoder 2's of the first chunk. An empty negative prompt gives zeros when
    `zero_empty_negative` (default: True for xl, as SDXL's force_zeros_for_empty_prompt; False otherwise).
    """
    return _encode_pairs(source, [(prompt, negative_prompt)], clip_skip, emphasis, layout, zero_empty_negative,
                         batch_size)[0]


def encode_schedule(source, prompt: str, negative_prompt: str = "", steps: int = 20, clip_skip: int = 1,
                    emphasis: str = "Original", layout: str | None = None, zero_empty_negative: bool | None = None,
                    batch_size: int = 1, old_timelines: bool = False) -> list[dict]:
    """`encode`'s dict for each sampler step 0..steps-1 of A1111's prompt schedules (`[from:to:when]`, `[a|b]`).

    Steps with the same prompt pair share one dict (`is`); all dicts have the same number of chunks, so a
    per-step callback can swap them in: pass `result[0]` to the pipeline and, at the end of step i, replace the
    pipeline's `prompt_embeds` with cat([negative, positive]) of `result[i + 1]` (and, for xl, `add_text_embeds`
    with the pooled pair) when `result[i + 1] is not result[i]`.
    """
    pos = schedule(extract_networks(prompt)[0], steps, old_timelines)
    neg = schedule(extract_networks(negative_prompt)[0], steps, old_timelines)
    pairs = [(prompt_at(pos, i), prompt_at(neg, i)) for i in range(steps)]
    distinct = list(dict.fromkeys(pairs))
    dicts = _encode_pairs(source, distinct, clip_skip, emphasis, layout, zero_empty_negative, batch_size)
    by_pair = dict(zip(distinct, dicts))
    return [by_pair[pair] for pair in pairs]


def _encode_pairs(source, pairs, clip_skip, emphasis, layout, zero_empty_negative, batch_size) -> list[dict]:
    """`encode` for several (prompt, negative) pairs, every embedding padded to the same number of chunks."""
    import torch

    check_emphasis(emphasis)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise BadInput(f"batch_size={batch_size!r}: at least 1 picture per run is needed.")
    layout, encoders = _encoders(source, layout)
    _check_clip_skip(clip_skip, encoders)
    zero = layout == "xl" if zero_empty_negative is None else zero_empty_negative
    texts = {extract_networks(t)[0] for pair in pairs for t in pair}
    with torch.no_grad():
        encoded = {t: _encode_text(encoders, t, layout, clip_skip, emphasis) for t in texts}
        chunks = max(z.shape[1] for z, _ in encoded.values()) // (CHUNK + 2)
        if "" not in encoded and chunks > 1:  # padding chunks are the empty prompt's
            encoded[""] = _encode_text(encoders, "", layout, clip_skip, emphasis)
        out = []
        for prompt, negative in pairs:
            z, pooled = _padded(encoded, extract_networks(prompt)[0], chunks)
            neg_text = extract_networks(negative)[0]
            if zero and neg_text == "":
                neg_z, neg_pooled = torch.zeros_like(z), None if pooled is None else torch.zeros_like(pooled)
            else:
                neg_z, neg_pooled = _padded(encoded, neg_text, chunks)
            out.append(_result(z, neg_z, pooled, neg_pooled, batch_size))
    return out


def _encoders(source, layout: str | None) -> tuple[str, list[_Encoder]]:
    components = getattr(source, "components", source)
    if layout is None:
        layout = getattr(source, "layout", None) or _layout_of(components)
    if layout not in LAYOUTS:
        raise BadInput(f"layout={layout!r} is not one of {tuple(LAYOUTS)}.")
    spec = LAYOUTS[layout]
    encoders = [_Encoder(components.get(name.replace("text_encoder", "tokenizer")), components.get(name),
                         name == spec.pooled) for name in spec.text_encoders]
    if any(e.tokenizer is None or e.model is None for e in encoders):
        raise BadInput(f"The {layout} layout needs text_encoder{'/_2' if layout == 'xl' else ''} and its "
                       f"tokenizer; these components lack one. Pass the right layout=.")
    return layout, encoders


def _layout_of(components: dict) -> str:
    if components.get("text_encoder") is None:
        return "refiner"
    return "xl" if components.get("text_encoder_2") is not None else "sd"


def _check_clip_skip(clip_skip: int, encoders: list[_Encoder]) -> None:
    layers = min(e.model.config.num_hidden_layers for e in encoders)
    if not isinstance(clip_skip, int) or not 1 <= clip_skip <= layers:
        raise BadInput(f"clip_skip={clip_skip!r}: A1111 counts from 1 (last layer); this text encoder has "
                       f"{layers} layers. Use 1 or 2.")


def _encode_text(encoders: list[_Encoder], text: str, layout: str, clip_skip: int, emphasis: str):
    """(z (1, 77k, width summed over encoders), pooled (1, proj) or None) of one prompt text."""
    import torch

    per_encoder = [tokenize_chunks(e.tokenizer, text, emphasis) for e in encoders]
    count = max(len(chunks) for chunks in per_encoder)
    columns, pooled = [], None
    for encoder, chunks in zip(encoders, per_encoder):
        chunks = chunks + tokenize_chunks(encoder.tokenizer, "", emphasis) * (count - len(chunks))
        zs = []
        for i, chunk in enumerate(chunks):
            z, text_embeds = _run(encoder, chunk, layout, clip_skip)  # (1, 77, width), (1, proj)
            zs.append(_emphasize(z, chunk.weights, emphasis))
            if encoder.pooled and i == 0:
                pooled = text_embeds
        columns.append(torch.cat(zs, dim=1))  # (1, 77k, width)
    return torch.cat(columns, dim=-1), pooled  # (1, 77k, sum of widths)


def _run(encoder: _Encoder, chunk: Chunk, layout: str, clip_skip: int):
    """One chunk through one text encoder: (hidden states (1, 77, width), text_embeds (1, proj) or None)."""
    import torch

    model = encoder.model
    ids = torch.tensor([chunk.ids], device=model.device)  # (1, 77)
    out = model(ids, output_hidden_states=True)
    if layout != "sd":
        z = out.hidden_states[-(clip_skip + 1)]  # SDXL: penultimate by default, no final norm
    elif clip_skip == 1:
        z = out.last_hidden_state
    else:
        z = getattr(model, "text_model", model).final_layer_norm(out.hidden_states[-clip_skip])
    return z, (out.text_embeds if encoder.pooled else None)


def _emphasize(z, weights: list[float], emphasis: str):
    """A1111's emphasis on one chunk: z * weight per token; "Original" then rescales to z's mean."""
    import torch

    if emphasis in ("None", "Ignore") or all(w == 1.0 for w in weights):
        return z
    w = torch.tensor(weights, dtype=z.dtype, device=z.device).reshape(1, -1, 1)  # (1, 77, 1)
    weighted = z * w
    if emphasis == "No norm":
        return weighted
    return weighted * (z.mean() / weighted.mean())


def _padded(encoded: dict, text: str, chunks: int):
    """`text`'s encoding with empty-prompt chunks appended up to `chunks` chunks (A1111's pad_cond_uncond)."""
    import torch

    z, pooled = encoded[text]
    missing = chunks - z.shape[1] // (CHUNK + 2)
    if missing:
        z = torch.cat([z, encoded[""][0].repeat(1, missing, 1)], dim=1)  # (1, 77 * chunks, width)
    return z, pooled


def _result(z, neg_z, pooled, neg_pooled, batch_size: int) -> dict:
    out = {"prompt_embeds": z.repeat(batch_size, 1, 1), "negative_prompt_embeds": neg_z.repeat(batch_size, 1, 1)}
    if pooled is not None:
        out["pooled_prompt_embeds"] = pooled.repeat(batch_size, 1)  # (B, proj)
        out["negative_pooled_prompt_embeds"] = neg_pooled.repeat(batch_size, 1)
    return out
