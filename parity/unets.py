"""The two networks of the parity cases, built the same way in labkit's venv and in the scratch venv.

Needs only torch and diffusers (both sides pin the same versions), never labkit: the tool side must not run
labkit code. `fingerprint` proves both sides hold the same weights (export_inputs.py stores it).
"""
import hashlib
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SD15_CONFIG = "labkit/configs/sd1/unet/config.json"  # a labkit data file (JSON), read as data
SD15_UNET_SEED = 1234  # torch.manual_seed right before UNet2DConditionModel.from_config
SD15_COND_SEED = 1235  # torch.Generator seed: cond, then uncond, randn (1, 77, 768) each


def fingerprint(module) -> str:
    """sha256 over the state dict (sorted names, float32 bytes)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def build_sd15_unet():
    """The seeded random full-size SD 1.5 layout UNet (860 M parameters), float32, eval mode."""
    from diffusers import UNet2DConditionModel

    config = UNet2DConditionModel.load_config(str(ROOT / SD15_CONFIG))
    torch.manual_seed(SD15_UNET_SEED)
    return UNet2DConditionModel.from_config(config).eval()


def sd15_conds():
    """The full-size case's random cond and uncond (1, 77, 768), and the sha256 of their float32 bytes."""
    g = torch.Generator().manual_seed(SD15_COND_SEED)
    cond = torch.randn(1, 77, 768, generator=g)
    uncond = torch.randn(1, 77, 768, generator=g)
    digest = hashlib.sha256(cond.numpy().tobytes() + uncond.numpy().tobytes()).hexdigest()
    return cond, uncond, digest


def load_unet(model: str, work: Path, expect: str | None = None):
    """'toy' (the diffusers UNet export_inputs.py saved in `work`) or 'sd15' (rebuilt from the seed); checks the
    weight fingerprint against `expect` when given."""
    from diffusers import UNet2DConditionModel

    unet = (UNet2DConditionModel.from_pretrained(str(work / "toy_unet")).eval() if model == "toy"
            else build_sd15_unet())
    unet.requires_grad_(False)
    if expect is not None and fingerprint(unet) != expect:
        raise SystemExit(f"{model}: UNet weights differ from the ones export_inputs.py saw; rerun it")
    return unet


class Recorder:
    """eps = unet(x, t, context), logging each call's timestep and batch: the tools' UNet timesteps."""

    def __init__(self, unet):
        self.unet, self.calls = unet, []

    def __call__(self, x, t, context):
        t = torch.as_tensor(t, dtype=torch.float32).reshape(-1).expand(x.shape[0])  # (B,)
        self.calls.append((float(t[0]), int(x.shape[0])))
        return self.unet(x, t, encoder_hidden_states=context).sample

    def take(self):
        """The calls since the last take: (list of timesteps, one per model evaluation; number of UNet calls)."""
        calls, self.calls = self.calls, []
        return calls
