"""ComfyUI's own sampler code, run without its server (scratch venv only).

Each case goes through the KSampler node itself (`nodes.KSampler().sample`: `common_ksampler` ->
`comfy.sample.prepare_noise(latent, seed)` -> `comfy.samplers.KSampler` with its scheduler table, discard-penultimate,
denoise handling -> CFGGuider -> `KSAMPLER.sample` (start `noise_scaling`) -> `comfy/k_diffusion/sampling.py` or
`comfy/extra_samplers/uni_pc.py`), on a `comfy.model_base.BaseModel` built from ComfyUI's own SD15 model config
(`comfy.supported_models.SD15`: latent format, model_sampling, EPS) and wrapped in `ModelPatcher`.

The UNet inside it is either
  - "wrapped": the diffusers UNet labkit runs, called by BaseModel._apply_model with ComfyUI's c_in-scaled input and
    its rounded timestep (what the fixtures use), or
  - "own": ComfyUI's own openaimodel UNetModel holding the same weights, through
    `comfy.sd.load_diffusion_model_state_dict` (ComfyUI's UNETLoader path: it detects the family and converts the
    diffusers keys itself). Only the full-size SD 1.5 layout can go this way: ComfyUI's family match rejects the
    toy's single file (`model_config_from_unet`: no SD1 with a 64-wide context), and even a hand-made config
    could not hold it, since ComfyUI's UNetModel hard-codes GroupNorm(32) (`openaimodel.py`) and the toy uses 16
    groups. The self-check compares "own" with "wrapped" on the full-size case.
"""
import functools
import logging
import sys
import types
from pathlib import Path

import torch


class Comfy:
    def __init__(self, comfyui: Path):
        import diffusers.models.unets.unet_2d_condition  # noqa: F401  (before the torchvision stand-in below)

        # comfy/ldm/cosmos imports torchvision.transforms at module level; nothing here uses it
        tv = types.ModuleType("torchvision")
        tv.transforms = types.ModuleType("torchvision.transforms")
        sys.modules.setdefault("torchvision", tv)
        sys.modules.setdefault("torchvision.transforms", tv.transforms)
        sys.path.insert(0, str(comfyui))
        logging.disable(logging.WARNING)  # optional-dependency warnings (torchaudio, comfy_kitchen)
        import comfy.options

        comfy.options.enable_args_parsing()
        sys.argv = [sys.argv[0], "--cpu"]  # CPU-only torch: otherwise model_management probes CUDA
        import comfy.model_base
        import comfy.model_patcher
        import comfy.samplers
        import comfy.sd
        import comfy.supported_models
        import comfy.utils
        import nodes

        logging.disable(logging.NOTSET)
        self.comfy, self.nodes = comfy, nodes
        self.cpu = torch.device("cpu")
        self.seen = {}
        original = comfy.samplers.sample

        @functools.wraps(original)
        def sample(model, noise, positive, negative, cfg, device, sampler, sigmas, *a, **kw):
            self.seen["sigmas"] = sigmas.detach().clone()
            inner = sampler.sampler_function

            @functools.wraps(inner)
            def sampler_function(model_k, x, sigmas, *a2, **kw2):
                self.seen["start"] = x.detach().clone()
                return inner(model_k, x, sigmas, *a2, **kw2)

            sampler.sampler_function = sampler_function
            try:
                return original(model, noise, positive, negative, cfg, device, sampler, sigmas, *a, **kw)
            finally:
                sampler.sampler_function = inner

        comfy.samplers.sample = sample  # KSampler.sample looks the module-level name up at call time

    # ---- models ----------------------------------------------------------------------------------------------
    def wrapped(self, recorder):
        """BaseModel (SD15 config) whose diffusion_model calls recorder(x, t, context)."""
        class WrappedUNet(torch.nn.Module):
            def __init__(self, device=None, operations=None, **unet_config):
                super().__init__()

            @property
            def dtype(self):
                return torch.float32

            def forward(self, x, timesteps=None, context=None, control=None, transformer_options=None, **kw):
                return recorder(x, timesteps, context)

        config = self.comfy.supported_models.SD15({})
        model = self.comfy.model_base.BaseModel(config, self.comfy.model_base.ModelType.EPS, device=self.cpu,
                                                unet_model=WrappedUNet)
        return self.comfy.model_patcher.ModelPatcher(model, load_device=self.cpu, offload_device=self.cpu)

    def own_from_diffusers(self, unet, recorder):
        """ComfyUI's own UNetModel from a diffusers UNet state dict (ComfyUI detects the family and converts)."""
        patcher = self.comfy.sd.load_diffusion_model_state_dict(dict(unet.state_dict()),
                                                                model_options={"dtype": torch.float32})
        if patcher is None:
            raise RuntimeError("ComfyUI did not recognise this diffusers UNet")
        return self._record(patcher, recorder)

    @staticmethod
    def _record(patcher, recorder):
        """Log the own UNet's timesteps through the recorder's call list (the UNet itself computes eps)."""
        def hook(module, args, kwargs):
            x = args[0]
            t = args[1] if len(args) > 1 else kwargs["timesteps"]
            recorder.calls.append((float(t.reshape(-1)[0]), int(x.shape[0])))
        patcher.model.diffusion_model.register_forward_pre_hook(hook, with_kwargs=True)
        return patcher

    # ---- one generation --------------------------------------------------------------------------------------
    def run(self, patcher, recorder, sampler, scheduler, steps, cond, uncond, *, seed, size, init_latents=None,
            denoise=1.0):
        """Final latent in the UNet's (scaled) space of the KSampler node, plus what the sampler saw."""
        c = self.comfy
        if sampler not in c.samplers.KSampler.SAMPLERS or scheduler not in c.samplers.KSampler.SCHEDULERS:
            raise ValueError(f"ComfyUI has no {sampler}/{scheduler}")  # KSampler would silently use its default
        scale = patcher.model.latent_format.scale_factor
        if init_latents is None:  # txt2img: EmptyLatentImage (zeros) of the picture size
            latent = self.nodes.EmptyLatentImage().generate(size, size, 1)[0]
        else:
            latent = {"samples": torch.as_tensor(init_latents) / scale}  # a VAEEncode LATENT (unscaled)
        positive, negative = [[torch.as_tensor(cond), {}]], [[torch.as_tensor(uncond), {}]]
        self.seen.clear()
        recorder.take()
        with torch.no_grad():
            out = self.nodes.KSampler().sample(patcher, seed, steps, 7.0, sampler, scheduler, positive, negative,
                                               latent, denoise=denoise)[0]["samples"]
        calls = recorder.take()
        noise = c.sample.prepare_noise(latent["samples"], seed)  # what common_ksampler drew
        return {"latent": out.float() * scale, "noise": noise, "calls": calls, **self.seen}

    def sigmas_of(self, patcher, sampler, scheduler, steps, denoise=1.0):
        return self.comfy.samplers.KSampler(patcher, steps, "cpu", sampler, scheduler, denoise).sigmas
