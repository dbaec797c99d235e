"""A1111's prompt syntax, as pure functions of text (no torch, no tokenizer).

- weights: `(word)`, `[word]`, `(word:1.3)`, escapes, BREAK -> `parse_weights`;
- extra networks: `<lora:name:weight>` and other `<kind:...>` tags -> `extract_networks`, `extract_loras`;
- scheduled and alternating prompts: `[from:to:when]`, `[to:when]`, `[from::when]`, `[a|b]` -> `schedule`,
  `prompt_at`.

Where A1111 crashes or does something accidental, labkit documents what it does instead (see `parse_weights`).
"""

import math
import re
import warnings
from typing import NamedTuple

from ..errors import BadInput

BREAK = ("BREAK", None)  # parse_weights' marker for BREAK: the next text starts a new 75-token chunk
ROUND = 1.1  # (text) multiplies by 1.1
SQUARE = 1 / 1.1  # [text] divides by 1.1
EMPHASIS = ("Original", "No norm", "Ignore", "None")  # A1111's emphasis modes (how weights are applied)
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
