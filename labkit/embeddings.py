"""Textual-inversion embeddings (A1111 `emb_params`, SDXL `clip_l`/`clip_g`) loaded through diffusers."""

from .errors import BadInput, UnsupportedFile


def load_embedding(lab, path, token: str) -> list[str]:
    """Add `token` to the lab's tokenizer(s) with the file's vectors; returns the tokens added.

    A multi-vector embedding becomes `token`, `token_1`, ... and diffusers expands `token` in prompts.
    """
    from safetensors.torch import load_file

    from . import detect

    info = detect.inspect(path)
    if info.kind != "embedding":
        raise UnsupportedFile(f"{info.path.name} is a {info.kind} file, not a textual-inversion embedding.")
    if info.family != lab.family or lab.layout == "refiner":  # an embedding fits its family's text encoders
        raise BadInput(f"{info.path.name} is a {info.family} embedding and does not fit this {lab.family} model "
                       f"(its vectors have another text-encoder width); use an embedding made for {lab.family}.")
    taken = [name for name in ("tokenizer", "tokenizer_2") if lab.components.get(name) is not None
             and token in lab.components[name].get_vocab()]
    if taken:
        raise BadInput(f"token={token!r} is already a word of this model's tokenizer (a loaded embedding or a CLIP "
                       f"word): choose another token, e.g. '<{token.strip('<>')}-2>'.")
    tensors = load_file(str(path))
    pipe = lab.pipe
    c = lab.components
    if lab.layout == "xl":
        pairs = [(tensors["clip_l"], c["text_encoder"], c["tokenizer"]),
                 (tensors["clip_g"], c["text_encoder_2"], c["tokenizer_2"])]
    else:
        vectors = tensors.get("emb_params")
        if vectors is None:
            vectors = next(v for k, v in tensors.items() if k.startswith("string_to_param"))
        pairs = [(vectors, c["text_encoder"], c["tokenizer"])]
    for vectors, encoder, tok in pairs:
        vectors = vectors.reshape(-1, vectors.shape[-1]).to(encoder.dtype)  # (n_vectors, width)
        pipe.load_textual_inversion(vectors, token=token, text_encoder=encoder, tokenizer=tok)
    n = pairs[0][0].reshape(-1, pairs[0][0].shape[-1]).shape[0]
    return [token] + [f"{token}_{i}" for i in range(1, n)]
