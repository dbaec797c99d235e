"""Prompts as A1111 cuts them into CLIP token chunks (a tokenizer, no torch).

- the prompt is cut into chunks of 75 tokens (77 with BOS/EOS); a chunk that fills up within 20 tokens of a
  comma is cut right after that comma instead (A1111's `comma_padding_backtrack`); BREAK starts a new chunk;
- each token carries the weight its brackets give it.
"""

from typing import NamedTuple

from ..errors import BadInput
from .syntax import EMPHASIS, extract_networks, parse_weights, schedule

CHUNK = 75  # prompt tokens per chunk; +BOS +EOS = 77
COMMA_BACKTRACK = 20  # A1111's default comma_padding_backtrack


class Chunk(NamedTuple):
    """One 77-token window of a prompt: BOS, up to 75 prompt tokens, EOS, padding; a weight per token."""

    ids: list[int]
    weights: list[float]


def tokenize_chunks(tokenizer, text: str, emphasis: str = "Original",
                    backtrack: int = COMMA_BACKTRACK) -> list[Chunk]:
    """`text` (no tags, no schedule syntax) as A1111 chunks it for one CLIP tokenizer.

    Textual-inversion tokens added to the tokenizer (diffusers' `load_textual_inversion`: `tok`, `tok_1`, ...)
    expand to all their vectors, which A1111 never splits across two chunks.
    """
    return [_wrap(tokenizer, chunk) for chunk in _chunk_pairs(tokenizer, text, emphasis, backtrack)]


def token_counts(tokenizer, text: str, steps: int = 20, emphasis: str = "Original") -> list[int]:
    """Prompt tokens in each 75-token chunk, as A1111's counter shows them: tags removed, and for a scheduled
    prompt (`[a:b:0.5]`, `[a|b]`) the variant that needs the most chunks (then the most tokens)."""
    text, _, _ = extract_networks(text)
    variants = sorted({variant for _, variant in schedule(text, max(1, steps))})
    counts = [[len(pairs) for pairs in _chunk_pairs(tokenizer, v, emphasis, COMMA_BACKTRACK)] for v in variants]
    return max(counts, key=lambda c: (len(c), sum(c)))


def _chunk_pairs(tokenizer, text: str, emphasis: str, backtrack: int) -> list[list[tuple[int, float]]]:
    """The (token id, weight) pairs of each chunk, before BOS/EOS/padding."""
    check_emphasis(emphasis)
    pieces = [(text, 1.0)] if emphasis == "None" else parse_weights(text)
    texts = [t for t, w in pieces if w is not None]
    ids = iter(tokenizer(texts, add_special_tokens=False, verbose=False).input_ids if texts else [])
    items = []  # (token ids of one unit, weight), or None for BREAK
    for text_, weight in pieces:
        if weight is None:
            items.append(None)
            continue
        items += [(unit, weight) for unit in _units(tokenizer, next(ids))]
    comma = tokenizer.convert_tokens_to_ids(",</w>")
    return _split(items, comma, backtrack)


def _units(tokenizer, ids: list[int]) -> list[tuple[int, ...]]:
    """Token ids grouped into units: a multi-vector textual-inversion token with its `_1`, `_2` ... tokens."""
    added = tokenizer.added_tokens_encoder  # token -> id
    names = {i: t for t, i in added.items()}
    units = []
    for i in ids:
        group, name = [i], names.get(i)
        while name is not None and f"{name}_{len(group)}" in added:
            group.append(added[f"{name}_{len(group)}"])
        units.append(tuple(group))
    return units


def _split(items: list, comma: int, backtrack: int) -> list[list[tuple[int, float]]]:
    """A1111's chunking: <= 75 (id, weight) per chunk; a full chunk moves what follows its last comma (if
    within `backtrack` tokens of the end) to the next chunk; None (BREAK) closes the chunk, even an empty one."""
    chunks, current, last_comma = [], [], -1
    for item in items:
        if item is None:
            chunks.append(current)
            current, last_comma = [], -1
            continue
        unit, weight = item
        if len(unit) > CHUNK:
            raise BadInput(f"A textual-inversion token has {len(unit)} vectors; at most {CHUNK} fit a chunk.")
        if unit == (comma,):
            last_comma = len(current)
        elif len(current) == CHUNK and last_comma >= 0 and CHUNK - last_comma <= backtrack:
            cut = last_comma + 1
            chunks.append(current[:cut])
            current, last_comma = current[cut:], -1
        if len(current) + len(unit) > CHUNK:
            chunks.append(current)
            current, last_comma = [], -1
        current += [(token, weight) for token in unit]
    if current or not chunks:
        chunks.append(current)
    return chunks


def _wrap(tokenizer, pairs: list[tuple[int, float]]) -> Chunk:
    """BOS + tokens + EOS + padding (the tokenizer's pad token: EOS for CLIP-L, "!" for OpenCLIP-G)."""
    pad = CHUNK - len(pairs)
    ids = [tokenizer.bos_token_id, *(t for t, _ in pairs), tokenizer.eos_token_id] + [tokenizer.pad_token_id] * pad
    return Chunk(ids, [1.0, *(w for _, w in pairs), 1.0] + [1.0] * pad)


def check_emphasis(emphasis: str) -> None:
    if emphasis not in EMPHASIS:
        raise BadInput(f"emphasis={emphasis!r} is not one of {EMPHASIS} (A1111's names).")
