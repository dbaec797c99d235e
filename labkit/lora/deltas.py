"""Weight deltas of every LoRA format, computed by hand because labkit folds them into the weights.

Each function takes one module's tensors {part: tensor} (parts named as in formats.PARTS) and returns the
unscaled product, (out, in * kh * kw) or (out, in, kh, kw); `Patch.delta` scales it and shapes it like the
weight. The formulas (REFERENCE.md "LoRA files"):
    LoRA / LoCon   dW = up @ down                   (Tucker: up x mid x down)
    LoHa           dW = (w1a @ w1b) * (w2a @ w2b)   (Tucker: t1 x w1a x w1b, likewise for w2)
    LoKr           dW = kron(w1, w2)                (each factor full, or a @ b, or Tucker for w2)
    DoRA           W' = m * (W + dW) / ||W + dW||   (norm per output row, or per input column)
"""

from dataclasses import dataclass


def tucker(core, a, b):
    """A Tucker-decomposed kernel: core (r, r, kh, kw), a (r, out), b (r, in) -> (out, in, kh, kw)."""
    import torch

    return torch.einsum("ijhw,ip,jq->pqhw", core, a, b)


def lora(t):
    import torch

    up = t["up"].flatten(1)  # (out, r)
    if "mid" in t:  # LoCon Tucker: down (r, in, 1, 1), mid (r, r, kh, kw), up (out, r, 1, 1)
        return torch.einsum("or,rshw,si->oihw", up, t["mid"], t["down"].flatten(1))  # (out, in, kh, kw)
    return up @ t["down"].flatten(1)  # (out, in * kh * kw)


def _factor(t, full, a, b, core=None):
    """One factor of LoHa/LoKr: stored whole, as a Tucker core with its two matrices, or as a @ b."""
    if full in t:
        return t[full]
    if core in t:
        return tucker(t[core], t[a], t[b])  # (out, in, kh, kw)
    return t[a] @ t[b].flatten(1)  # (out, in * kh * kw)


def loha(t):
    return _factor(t, None, "w1a", "w1b", "t1") * _factor(t, None, "w2a", "w2b", "t2")  # Hadamard product


def lokr(t):
    import torch

    w1 = _factor(t, "k1", "k1a", "k1b")  # (out1, in1)
    w2 = _factor(t, "k2", "k2a", "k2b", "kt2")  # (out2, in2 * kh * kw) or (out2, in2, kh, kw)
    if w2.ndim == 4:
        w1 = w1.reshape(*w1.shape[:2], 1, 1)  # (out1, in1, 1, 1)
    return torch.kron(w1, w2)  # (out1 * out2, in1 * in2 [* kh * kw] [, kh, kw])


PRODUCTS = {"lora": lora, "loha": loha, "lokr": lokr}


def dora(w0, dw, magnitude, per_output: bool):
    """DoRA's change of the weight: m * (W0 + dW) / ||W0 + dW|| - W0, normed per output row (PEFT, and LyCORIS'
    default) or per input column (LyCORIS with wd_on_out=False)."""
    w = w0 + dw
    if per_output:
        norm = w.flatten(1).norm(dim=1).reshape(-1, *[1] * (w.ndim - 1))  # (out, 1[, 1, 1])
    else:
        norm = w.transpose(0, 1).flatten(1).norm(dim=1).reshape(1, -1, *[1] * (w.ndim - 2))  # (1, in[, 1, 1])
    return magnitude.reshape(norm.shape) * w / norm - w0


def product_shape(kind: str, shapes: dict) -> tuple | None:
    """The shape the kind's product would have, computed on meta tensors (no data); None if the parts disagree."""
    import torch

    meta = {part: torch.empty(shape, device="meta") for part, shape in shapes.items()}
    try:
        return tuple(PRODUCTS[kind](meta).shape)
    except RuntimeError:
        return None


def as_matrix(shape) -> tuple:
    """(out, in * kh * kw): how a weight and a product are compared (1x1 convs fit linear layers and back)."""
    rest = 1
    for n in shape[1:]:
        rest *= n
    return (shape[0], rest)


@dataclass(eq=False)
class Patch:
    """One module of one LoRA, ready to fold: its target layer, kind, tensors (on the weight's device, in the file's
    precision: float32 only while folding), alpha / rank scale, and the DoRA magnitude if any."""

    target: object  # targets.Target
    kind: str
    tensors: dict
    scale: float
    magnitude: object = None  # tensor, DoRA only
    per_output: bool = True

    @property
    def needs_original(self) -> bool:
        """Whether the change depends on the original weight's values (DoRA's norm does), not only its shape."""
        return self.magnitude is not None

    def add_to(self, w, w0, weight: float) -> None:
        """w += weight * delta(w0) in place, `w` float32 and contiguous. A plain LoRA is one fused multiply-add into
        `w` (no full-size temporaries: folding a whole SDXL LoRA is memory traffic, not arithmetic)."""
        if self.kind == "lora" and "mid" not in self.tensors and self.magnitude is None:
            up, down = (self.tensors[part].flatten(1).to(w.device, w.dtype) for part in ("up", "down"))
            w.view(w.shape[0], -1).addmm_(up, down, alpha=weight * self.scale)
        else:  # only DoRA reads w0's values; the others its shape and device, which `w` shares
            w += weight * self.delta(w0 if w0 is not None else w)

    def delta(self, w0):
        """The change this module makes to the original weight `w0` (float32) at LoRA weight 1."""
        import torch

        tensors = {part: t.to(w0.device, torch.float32) for part, t in self.tensors.items()}
        dw = (PRODUCTS[self.kind](tensors) * self.scale).reshape(w0.shape)
        if self.magnitude is not None:
            dw = dora(w0, dw, self.magnitude.to(w0.device), self.per_output)
        return dw


def dora_magnitude(parts, tensors, weight_shape):
    """(magnitude, per_output) of a DoRA module; (None, True) without one; (False, _) when it does not fit."""
    if "magnitude" in parts:  # PEFT: one magnitude per output row
        m = tensors[parts["magnitude"]]
        return (m, True) if m.numel() == weight_shape[0] else (False, True)
    if "dora_scale" in parts:  # LyCORIS: (out, 1, ...) per output row, or (1, in, ...) per input column
        m = tensors[parts["dora_scale"]]
        per_output = m.shape[0] == weight_shape[0]
        fits = m.numel() == weight_shape[0 if per_output else 1]
        return (m, per_output) if fits else (False, per_output)
    return None, True
