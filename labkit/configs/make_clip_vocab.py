"""Derive CLIP's BPE tokenizer files (vocab.json, merges.txt) from OpenAI's `bpe_simple_vocab_16e6.txt.gz`.

Run once; labkit ships the result in `labkit/configs/clip/` so no package or download is needed at run time:

    pip download --no-deps open_clip_torch && unzip -j open_clip_torch-*.whl '*/bpe_simple_vocab_16e6.txt.gz'
    python -m labkit.configs.make_clip_vocab bpe_simple_vocab_16e6.txt.gz labkit/configs/clip
"""

import gzip
import json
import sys
from pathlib import Path

N_MERGES = 49152 - 256 - 2  # CLIP keeps the first 48894 merges: 256 bytes x2 + merges + 2 specials = 49408


def byte_alphabet() -> list[str]:
    """The 256 printable stand-ins for bytes used by byte-level BPE, in CLIP's vocabulary order.

    Printable bytes stand for themselves and come first; the others map to chr(256 + n), in byte order.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + n) for n in range(len(others))]


def derive(bpe_lines: list[str]) -> tuple[dict[str, int], list[str]]:
    """(vocab, merges) of CLIP's tokenizer from the lines of the BPE file (first line is a header)."""
    merges = bpe_lines[1 : N_MERGES + 1]
    alphabet = byte_alphabet()
    tokens = alphabet + [a + "</w>" for a in alphabet] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def main(src: str, out_dir: str) -> None:
    lines = gzip.open(src, "rt", encoding="utf-8").read().split("\n")
    vocab, merges = derive(lines)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(out / "vocab.json.gz", "wb", mtime=0) as f:
        f.write(json.dumps(vocab, ensure_ascii=False).encode())
    with gzip.GzipFile(out / "merges.txt.gz", "wb", mtime=0) as f:
        f.write(("#version: 0.2\n" + "\n".join(merges) + "\n").encode())
    print(f"{len(vocab)} tokens, {len(merges)} merges -> {out}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
