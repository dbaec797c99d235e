"""A1111 prompt syntax: weights, BREAK, <lora:...> tags, scheduled and alternating prompts, long prompts.

The text functions (`parse_weights`, `extract_loras`, `extract_networks`, `schedule`, `prompt_at`) are pure
and import no torch. `encode` / `encode_schedule` turn a prompt into the embeddings diffusers' pipelines take
(`prompt_embeds=` ...), chunked and weighted as A1111's `sd_hijack_clip` does:

- the prompt is cut into chunks of 75 tokens (77 with BOS/EOS); a chunk that fills up within 20 tokens of a
  comma is cut right after that comma instead (A1111's `comma_padding_backtrack`); BREAK starts a new chunk;
- each chunk is encoded on its own and the chunks are concatenated along the token axis: (B, 77*k, width);
- weights multiply each token's embedding; "Original" emphasis then restores the chunk's mean.

Where A1111 crashes or does something accidental, labkit documents what it does instead (see `parse_weights`).
"""

import math
import re
import warnings
from typing import NamedTuple

from .errors import BadInput

BREAK = ("BREAK", None)  # parse_weights' marker for BREAK: the next text starts a new 75-token chunk
ROUND = 1.1  # (text) multiplies by 1.1
SQUARE = 1 / 1.1  # [text] divides by 1.1
CHUNK = 75  # prompt tokens per chunk; +BOS +EOS = 77
COMMA_BACKTRACK = 20  # A1111's default comma_padding_backtrack
EMPHASIS = ("Original", "No norm", "Ignore", "None")
LAYOUTS = ("sd", "xl", "refiner")
LORA_KINDS = ("lora", "lyco")  # extra-network tags labkit applies; A1111 treats "lyco" as an alias of "lora"

# ---- weights: (word) [word] (word:1.3) \( escapes, BREAK ------------------------------------------------

_ATTENTION = re.compile(r"""
      \\[()\[\]\\]                                   # \( \) \[ \] \\ : the literal character
    | \\                                             # any other backslash: dropped, as in A1111
    | [(\[]                                          # opening bracket
    | :\s*(?P<weight>[+-]?(?:\d+\.?\d*|\.\d+))\s*\)  # ":1.3)" closes a weighted round bracket
    | [)\]]                                          # closing bracket
    | [^\\()\[\]:]+                                  # plain text (may contain BREAK)
    | :                                              # a colon that closes nothing: plain text
""", re.X)
_BREAK_WORD = re.compile(r"\s*\bBREAK\b\s*")


def parse_weights(text: str) -> list[tuple[str, float | None]]:
    """A1111's attention syntax as [(text, weight)], adjacent equal weights merged; BREAK appears as `BREAK`.

    >>> parse_weights("a (red:1.5) circle")
    [('a ', 1.0), ('red', 1.5), (' circle', 1.0)]

    Lenient cases, as in A1111 unless noted:
    - an unclosed `(` or `[` applies to everything after it: "(a" -> [("a", 1.1)];
    - an unmatched `)` or `]` is plain text: "a)" -> [("a)", 1.0)];
    - a `:` that is not `:<number>)` inside an open `(` is plain text: "(a:b)" -> [("a:b", 1.1)],
      "(a:1.2" -> [("a:1.2", 1.1)] (unclosed); a malformed number such as "(a:1.2.3)" is plain text too
      (A1111 crashes on it);
    - a backslash before anything but ( ) [ ] \\ is dropped: "a\\b" -> [("ab", 1.0)];
    - BREAK (upper case, a whole word) is a chunk break even inside brackets (A1111 multiplies its internal
      marker there and ends up encoding the word "BREAK"); whitespace around it is dropped.
    Empty texts are left out; an empty prompt gives [("", 1.0)]. Raises BadInput if a weight overflows.
    """
    pieces = []  # [text, weight] lists; closing brackets scale the pieces since their opening
    opened = {"(": [], "[": []}
    for m in _ATTENTION.finditer(text):
        token, weight = m.group(0), m.group("weight")
        if token[0] == "\\":
            pieces.append([token[1:], 1.0])
        elif token in ("(", "["):
            opened[token].append(len(pieces))
        elif weight is not None and opened["("]:
            _scale(pieces, opened["("].pop(), float(weight))
        elif token == ")" and opened["("]:
            _scale(pieces, opened["("].pop(), ROUND)
        elif token == "]" and opened["["]:
            _scale(pieces, opened["["].pop(), SQUARE)
        else:
            pieces += _split_breaks(token)
    for start in opened["("]:
        _scale(pieces, start, ROUND)
    for start in opened["["]:
        _scale(pieces, start, SQUARE)
    return _merge(pieces)


def _scale(pieces: list, start: int, factor: float) -> None:
    for piece in pieces[start:]:
        if piece[1] is not None:
            piece[1] *= factor


def _split_breaks(text: str) -> list[list]:
    parts = _BREAK_WORD.split(text)
    out = [[parts[0], 1.0]]
    for part in parts[1:]:
        out += [list(BREAK), [part, 1.0]]
    return out


def _merge(pieces: list) -> list[tuple[str, float | None]]:
    out = []
    for text, weight in pieces:
        if weight is not None and not math.isfinite(weight):
            raise BadInput(f"A prompt weight overflows ({weight}) around {text!r}: use weights like (word:1.5).")
        if weight is None:
            out.append(BREAK)
        elif text and out and out[-1][1] == weight:
            out[-1] = (out[-1][0] + text, weight)
        elif text:
            out.append((text, weight))
    return out or [("", 1.0)]


# ---- extra networks: <lora:name:w>, <lora:name:te:unet>, <hypernet:...> -----------------------------------

_NETWORK = re.compile(r"<(\w+):([^>]+)>")


class LoraTag(NamedTuple):
    """One `<lora:name:te_weight:unet_weight>` tag of a prompt."""

    name: str
    te_weight: float = 1.0
    unet_weight: float = 1.0


def extract_networks(text: str) -> tuple[str, list[LoraTag], list[str]]:
    """(text without any `<kind:...>` tag, the LoRA tags, the other tags verbatim, which labkit does not apply).

    A1111 removes every `<word:...>` tag from the text it encodes (surrounding commas and spaces stay); it
    applies `lora`/`lyco` tags and, in A1111 itself, `hypernet` ones.
    """
    loras, unsupported = [], []

    def take(m):
        if m.group(1) in LORA_KINDS:
            loras.append(_lora_tag(m.group(0), m.group(2)))
        else:
            unsupported.append(m.group(0))
        return ""

    return _NETWORK.sub(take, text), loras, unsupported


def extract_loras(text: str) -> tuple[str, list[LoraTag]]:
    """(text without tags, [LoraTag]); warns about tags labkit does not apply (`<hypernet:...>` ...)."""
    text, loras, unsupported = extract_networks(text)
    if unsupported:
        warnings.warn(f"labkit does not apply {', '.join(unsupported)} (only <lora:...> tags); removed from the "
                      f"prompt.", stacklevel=2)
    return text, loras


def _lora_tag(tag: str, args: str) -> LoraTag:
    """`<lora:name[:te[:unet]]>`, also `te=`/`unet=` (A1111: unet defaults to te, te to 1)."""
    items = args.split(":")
    named = dict(item.split("=") for item in items if item.count("=") == 1)
    positional = [item for item in items if item.count("=") != 1]
    unknown = sorted(set(named) - {"te", "unet"})
    if unknown or len(positional) > 3:
        what = f"option {unknown[0]}=" if unknown else "a 4th value (dyn, LoRA rank limit)"
        raise BadInput(f"{tag}: labkit does not support {what}; write <lora:name:weight> or "
                       f"<lora:name:te_weight:unet_weight>.")
    if not positional or not positional[0]:
        raise BadInput(f"{tag} names no LoRA; write <lora:name:weight>.")
    te = _tag_weight(tag, named.get("te", positional[1] if len(positional) > 1 else "1"))
    unet = _tag_weight(tag, named.get("unet", positional[2] if len(positional) > 2 else str(te)))
    return LoraTag(positional[0], te, unet)


def _tag_weight(tag: str, value: str) -> float:
    try:
        weight = float(value)
    except ValueError:
        weight = math.nan
    if not math.isfinite(weight):
        raise BadInput(f"{tag}: weight {value!r} is not a number; write e.g. <lora:name:0.8>.")
    return weight


# ---- scheduled prompts: [from:to:when] [to:when] [from::when] [a|b] ----------------------------------------

MAX_DEPTH = 100  # bracket nesting deeper than this is left unscheduled (plain text)
_PLAIN = re.compile(r"[^\\\[\]():|]+")
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_WHEN = re.compile(rf"\s*({_NUMBER})\s*\]")  # the end of [from:to:when]
_WHEN_ONLY = re.compile(rf"\s*({_NUMBER})\s*")  # the whole `when` of [to:when]


class _Scheduled(NamedTuple):
    before: list | None  # nodes before the switch (None: nothing)
    after: list
    when: str  # the number as written: a decimal point means a fraction of the steps


class _Alternate(NamedTuple):
    options: list  # one node list per option


def schedule(text: str, steps: int, old_timelines: bool = False) -> list[tuple[int, str]]:
    """A1111's prompt schedule: [(end_step, prompt)], each prompt used until its end step (1-based, inclusive).

    `when` with a decimal point is a fraction of `steps` ("0.25", "1.0"), without one a step number ("5"), as
    A1111 >= 1.6 does; `old_timelines=True` is A1111's "Use old prompt editing timelines" (`when` < 1: fraction,
    else step). Alternation `[a|b]` changes each step, so its schedule has one entry per step.
    >>> schedule("a [cat:dog:0.5]", 10)
    [(5, 'a cat'), (10, 'a dog')]

    Text the grammar cannot read (an unescaped `|` outside brackets, a trailing backslash) is one unscheduled
    prompt, as in A1111; stray brackets and colons outside any construct are plain text.
    """
    if not isinstance(steps, int) or steps < 1:
        raise BadInput(f"steps={steps!r}: a prompt schedule needs at least 1 step.")
    tree = _parse_top(text)
    if tree is None:
        return [(steps, text)]
    ends = _collect_ends(tree, steps, old_timelines)
    return [(end, _text_at(tree, end, steps, old_timelines)) for end in ends]


def prompt_at(entries: list[tuple[int, str]], step: int) -> str:
    """The prompt of a `schedule` for sampler step `step`, counted from 0 as A1111's sampler does.

    A1111 picks the first entry with `step <= end_step`, so [(5, 'a'), (10, 'b')] uses 'a' for steps 0..5.
    """
    for end, text in entries:
        if step <= end:
            return text
    return entries[-1][1]


def _parse_top(text: str) -> list | None:
    """A1111's `start` rule: constructs and plain text; brackets and colons that close nothing are plain text."""
    nodes, pos = [], 0
    while pos < len(text):
        ch = text[pos]
        if ch in "([":
            parsed = _parse_group(text, pos, 1)
            if parsed is not None:
                node, pos = parsed
                nodes.append(node)
                continue
        if ch in "()[]:":
            nodes.append(ch)
            pos += 1
        elif ch == "|":
            return None
        else:
            parsed = _parse_text(text, pos)
            if parsed is None:
                return None
            nodes.append(parsed[0])
            pos = parsed[1]
    return nodes


def _parse_text(text: str, pos: int) -> tuple[str, int] | None:
    """Plain characters or one escape (`\\` + any character but a newline)."""
    if text[pos] == "\\":
        if pos + 1 >= len(text) or text[pos + 1] == "\n":
            return None
        return text[pos:pos + 2], pos + 2
    m = _PLAIN.match(text, pos)
    return m.group(), m.end()


def _parse_seq(text: str, pos: int, depth: int) -> tuple[list, int] | None:
    """A1111's `prompt` rule: text and constructs up to a `:`, `|`, `)`, `]` or the end; None if malformed."""
    nodes = []
    while pos < len(text) and text[pos] not in ":|)]":
        parsed = _parse_group(text, pos, depth + 1) if text[pos] in "([" else _parse_text(text, pos)
        if parsed is None:
            return None
        nodes.append(parsed[0])
        pos = parsed[1]
    return nodes, pos


def _parse_group(text: str, pos: int, depth: int) -> tuple[object, int] | None:
    """A bracket construct at `pos`: (x) (x:y) [x] [from:to:when] [to:when] [a|b|...]; None if it is none."""
    if depth > MAX_DEPTH:
        return None
    opening = text[pos]
    first = _parse_seq(text, pos + 1, depth)
    if first is None:
        return None
    nodes, pos = first
    nxt = text[pos:pos + 1]
    if opening == "(":
        return _parse_round(text, pos, depth, nodes)
    if nxt == "]":
        return ["[", *nodes, "]"], pos + 1
    if nxt == "|":
        return _parse_alternate(text, pos, depth, nodes)
    if nxt == ":":
        return _parse_scheduled(text, pos, depth, nodes)
    return None


def _parse_round(text: str, pos: int, depth: int, nodes: list) -> tuple[list, int] | None:
    """The rest of `(x)` or `(x:y)`; kept as text (weights are parse_weights' business)."""
    if text[pos:pos + 1] == ")":
        return ["(", *nodes, ")"], pos + 1
    if text[pos:pos + 1] != ":":
        return None
    second = _parse_seq(text, pos + 1, depth)
    if second is None or text[second[1]:second[1] + 1] != ")":
        return None
    return ["(", *nodes, ":", *second[0], ")"], second[1] + 1


def _parse_alternate(text: str, pos: int, depth: int, nodes: list) -> tuple[_Alternate, int] | None:
    """The rest of `[a|b|...]` from the first `|`; options may be empty."""
    options = [nodes]
    while text[pos:pos + 1] == "|":
        option = _parse_seq(text, pos + 1, depth)
        if option is None:
            return None
        options.append(option[0])
        pos = option[1]
    if text[pos:pos + 1] != "]":
        return None
    return _Alternate(options), pos + 1


def _parse_scheduled(text: str, pos: int, depth: int, nodes: list) -> tuple[_Scheduled, int] | None:
    """The rest of `[from:to:when]` or `[to:when]` from the first `:`."""
    second = _parse_seq(text, pos + 1, depth)
    if second is None:
        return None
    after, end = second
    if text[end:end + 1] == ":":  # [from:to:when]
        m = _WHEN.match(text, end + 1)
        return (_Scheduled(nodes, after, m.group(1)), m.end()) if m else None
    m = _WHEN_ONLY.fullmatch(text, pos + 1, end)  # [to:when]: what follows the colon is the number
    if text[end:end + 1] == "]" and m:
        return _Scheduled(None, nodes, m.group(1)), end + 1
    return None


def _end_step(when: str, steps: int, old_timelines: bool) -> int:
    """The last step (1-based) of the `before` part: A1111's `min(steps, int(v))`, clamped to [0, steps]."""
    v = float(when)
    if (v < 1) if old_timelines else ("." in when):
        v *= steps
    return int(min(max(v, 0.0), steps))


def _walk(node):
    """Every node of a parsed prompt, depth first."""
    yield node
    if isinstance(node, _Scheduled):
        children = [*(node.before or []), *node.after]
    elif isinstance(node, _Alternate):
        children = [n for option in node.options for n in option]
    else:
        children = node if isinstance(node, list) else []
    for child in children:
        yield from _walk(child)


def _collect_ends(tree: list, steps: int, old_timelines: bool) -> list[int]:
    ends = {steps}
    for node in _walk(tree):
        if isinstance(node, _Scheduled):
            end = _end_step(node.when, steps, old_timelines)
            ends |= {end} if end >= 1 else set()
        elif isinstance(node, _Alternate):
            ends |= set(range(1, steps + 1))
    return sorted(ends)


def _text_at(node, step: int, steps: int, old_timelines: bool) -> str:
    """The prompt text of a parsed node at 1-based `step`."""
    if isinstance(node, str):
        return node
    if isinstance(node, _Scheduled):
        chosen = node.before if step <= _end_step(node.when, steps, old_timelines) else node.after
        return _text_at(chosen or [], step, steps, old_timelines)
    if isinstance(node, _Alternate):
        return _text_at(node.options[(step - 1) % len(node.options)], step, steps, old_timelines)
    return "".join(_text_at(child, step, steps, old_timelines) for child in node)


# ---- tokens and chunks --------------------------------------------------------------------------------------


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
    _check_emphasis(emphasis)
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


def _check_emphasis(emphasis: str) -> None:
    if emphasis not in EMPHASIS:
        raise BadInput(f"emphasis={emphasis!r} is not one of {EMPHASIS} (A1111's names).")


# ---- embeddings ----------------------------------------------------------------------------------------------


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

    _check_emphasis(emphasis)
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
        raise BadInput(f"layout={layout!r} is not one of {LAYOUTS}.")
    names = {"sd": [("", False)], "xl": [("", False), ("_2", True)], "refiner": [("_2", True)]}[layout]
    encoders = [_Encoder(components.get("tokenizer" + s), components.get("text_encoder" + s), pooled)
                for s, pooled in names]
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

