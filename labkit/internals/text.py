"""Text to vectors: the tokens labkit feeds CLIP, the embeddings it gets back, and what clip skip changes.

Everything goes through labkit's own prompt code (`labkit.prompts`), so what you see is what the pipeline gets:
A1111 weights `(word:1.5)`, BREAK, 75 prompt tokens per 77-token window, `<lora:...>` tags removed.
Schedule syntax (`[cat:dog:0.5]`) is not resolved here: pass the prompt of one step.
"""

from ..prompts import encode, extract_networks, tokenize_chunks


def token_table(lab, prompt: str, emphasis: str = "Original", padding: bool = False) -> list[dict]:
    """One row {position, token, id, weight, chunk} per token of `prompt` as labkit chunks it.

    `position` counts within the chunk's 77-token window (0 is the start token, 1 the first word);
    `chunk` is the window's index (a long prompt or BREAK makes several). Rows stop at each window's end token
    unless `padding=True`. SDXL: the first tokenizer's view (the second pads with "!" instead of the end token).
    """
    tokenizer = lab.components.get("tokenizer") or lab.components["tokenizer_2"]
    text = extract_networks(prompt)[0]
    rows = []
    for c, chunk in enumerate(tokenize_chunks(tokenizer, text, emphasis)):
        tokens = tokenizer.convert_ids_to_tokens(chunk.ids)
        end = len(chunk.ids) if padding else chunk.ids.index(tokenizer.eos_token_id, 1) + 1
        rows += [{"position": i, "token": tokens[i], "id": chunk.ids[i], "weight": chunk.weights[i], "chunk": c}
                 for i in range(end)]
    return rows


def embeddings(lab, prompt: str, clip_skip: int = 1, emphasis: str = "Original"):
    """(hidden states (77k, width), pooled (proj,) or None): the prompt's embeddings exactly as labkit encodes
    them for the pipeline (weights applied; SDXL: both encoders' widths side by side, pooled from encoder 2)."""
    out = encode(lab, prompt, clip_skip=clip_skip, emphasis=emphasis)
    pooled = out.get("pooled_prompt_embeds")
    return out["prompt_embeds"][0], None if pooled is None else pooled[0]  # (77k, width), (proj,)


def clip_skip_change(lab, prompt: str):
    """Cosine similarity, per token position, between the embeddings with clip skip 1 and 2 (numpy, (77k,)).

    1 everywhere would mean clip skip changes nothing; lower values show which positions it moves most.
    """
    import torch

    a, _ = embeddings(lab, prompt, clip_skip=1)  # (77k, width)
    b, _ = embeddings(lab, prompt, clip_skip=2)  # (77k, width)
    return torch.nn.functional.cosine_similarity(a, b, dim=-1).float().cpu().numpy()  # (77k,)

