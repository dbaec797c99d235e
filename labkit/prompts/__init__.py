"""A1111 prompt syntax and its encoding: `(word:1.2)`, `[from:to:when]`, `[a|b]`, BREAK, `<lora:...>`.

Three modules, from pure to torch: `syntax` (text only), `chunks` (A1111's 75-token chunks, needs a tokenizer),
`encoding` (embeddings for diffusers' pipelines, needs the text encoders). Their public names are re-exported
here; importing this package imports no torch.
"""

from .chunks import CHUNK, COMMA_BACKTRACK, Chunk, token_counts, tokenize_chunks
from .encoding import encode, encode_schedule
from .syntax import (
                     BREAK,
                     EMPHASIS,
                     LORA_KINDS,
                     LoraTag,
                     extract_loras,
                     extract_networks,
                     parse_weights,
                     prompt_at,
                     schedule,
)

__all__ = ["BREAK", "CHUNK", "COMMA_BACKTRACK", "Chunk", "EMPHASIS", "LORA_KINDS", "LoraTag", "encode",
           "encode_schedule", "extract_loras", "extract_networks", "parse_weights", "prompt_at", "schedule",
           "token_counts", "tokenize_chunks"]
