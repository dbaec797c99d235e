"""ComfyUI `.latent` files: latents saved between tools, read and written as ComfyUI's SaveLatent / LoadLatent do.

A `.latent` file is a safetensors file with the tensor "latent_tensor" (B, C, h, w) and, since ComfyUI's
"latent_format_version_0", an empty marker tensor of that name: such files hold the VAE's own latents (ComfyUI
divides by the model's scaling factor when a sampler hands latents on); older files without the marker hold them
multiplied by SD 1.x's 0.18215. labkit's `Result.latents` are in the UNet's space, the VAE's latents times the
model's scaling factor (`lab.components["vae"].config.scaling_factor`), so both functions take that factor.
"""

from pathlib import Path

from .errors import BadInput, UnsupportedFile

TENSOR, MARKER = "latent_tensor", "latent_format_version_0"
OLD_SCALE = 0.18215  # what pre-marker ComfyUI files were multiplied by


def write_latent(latents, path, scaling_factor: float, metadata: dict | None = None, overwrite: bool = False) -> Path:
    """Write UNet-space `latents` (B, C, h, w) as a ComfyUI `.latent` file that LoadLatent reads; returns the path.

    `metadata`: text values kept in the file's header (ComfyUI keeps "prompt" and "workflow" there)."""
    import torch

    from .files import save_safetensors

    path = Path(path)
    if path.suffix != ".latent":
        raise BadInput(f"{path.name}: ComfyUI's latent files end in .latent; name it {path.stem}.latent.")
    if path.exists() and not overwrite:
        raise BadInput(f"{path} already exists; pick another name or pass overwrite=True to replace it.")
    if not isinstance(latents, torch.Tensor) or latents.ndim != 4:
        raise BadInput("latents must be a torch tensor (B, C, h, w), e.g. Result.latents.")
    if metadata is not None and not all(isinstance(v, str) for v in metadata.values()):
        raise BadInput("metadata values must all be text (json.dumps anything else).")
    tensors = {TENSOR: (latents.detach().float().cpu() / scaling_factor).contiguous(), MARKER: torch.tensor([])}
    return save_safetensors(tensors, path, metadata)


def read_latent(path, scaling_factor: float):
    """The latents (B, C, h, w) float32 of a ComfyUI `.latent` file, in the UNet's space of a model whose VAE has
    `scaling_factor` (what `Result.latents` holds and `lab.decode` takes)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .header import read_header

    read_header(path)  # missing, pickled or foreign files get their usual explanation
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise UnsupportedFile(f"{path}: cannot read it as a safetensors file ({error}).") from None
    if TENSOR not in tensors:
        raise UnsupportedFile(f"{Path(path).name} holds no '{TENSOR}': it is not a ComfyUI latent file "
                              f"(its tensors: {', '.join(list(tensors)[:5])}).")
    latents = tensors[TENSOR].float()
    return latents * scaling_factor if MARKER in tensors else latents * (scaling_factor / OLD_SCALE)
