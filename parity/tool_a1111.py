"""AUTOMATIC1111 v1.10.1's own sampler code, run without the web UI (scratch venv only).

What runs is A1111's: `modules/sd_samplers_kdiffusion.py` (KDiffusionSampler.sample / sample_img2img: the schedule
choice, discard-penultimate, the start `x * sigmas[0]` or SGM's `x * sqrt(1 + sigmas[0]^2)`, the img2img slice),
`modules/sd_samplers_timesteps.py` + `_impl.py` (DDIM, PLMS, UniPC), `modules/sd_schedulers.py`, the CFG rule of
`modules/sd_samplers_cfg_denoiser.py` (CFGDenoiser.forward with prompt_parser's cond batches), `modules/rng.py`
(ImageRNG: the initial noise and Euler a's later noise) and the torchsde patch of `sd_samplers_common.py`
(DPM++ 2M SDE's Brownian noise), on k-diffusion ab527a9 (`sampling.py`, `external.py`: CompVisDenoiser).

What is stood in for, because it is the web UI, not sampling: `modules.shared` (options = the defaults parsed from
`shared_options.py`, plus the few this harness sets), `modules.devices` (CPU, float32), the LDM model object
(`apply_model(x, t, cond)` calls the diffusers UNet on `cond["c_crossattn"]`, the way ldm's DiffusionWrapper
calls its UNet with `context`; `alphas_cumprod` built like ldm's `register_schedule`: float64, then float32),
`script_callbacks` (its parameter classes are taken from the real file; no callback is registered, as in a
plain install), and the UI-only modules `images`, `sd_vae_approx`, `sd_vae_taesd`, `sd_models`, `sd_samplers`
(imported by sd_samplers_common, never called here). k_diffusion's package `__init__` (training code) is not run.
"""
import ast
import functools
import sys
import types
from pathlib import Path

import numpy as np
import torch

# options this harness sets on top of A1111's defaults
RANDN_SOURCE = "CPU"  # A1111 "Random number generator source": CPU (= labkit noise mode "a1111-cpu")


def _module(name, **attrs):
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m


def _package(name, path):
    m = _module(name)
    m.__path__ = [str(path)]
    return m


def option_defaults(a1111: Path) -> dict:
    """{key: default} of every OptionInfo(...) literal in modules/shared_options.py (read, not imported: it
    needs gradio)."""
    out = {}
    for node in ast.walk(ast.parse((a1111 / "modules" / "shared_options.py").read_text())):
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values):
                # OptionInfo(default, ...).info(...).link(...): unwrap the method calls to the constructor
                while isinstance(v, ast.Call) and isinstance(v.func, ast.Attribute):
                    v = v.func.value
                if (isinstance(k, ast.Constant) and isinstance(v, ast.Call) and v.args
                        and getattr(v.func, "id", None) == "OptionInfo"):
                    try:
                        out[k.value] = ast.literal_eval(v.args[0])
                    except ValueError:
                        pass
    # check that the options that matter here were read
    for key in ("sgm_noise_multiplier", "enable_quantization", "eta_ancestral", "eta_ddim", "uni_pc_variant",
                "uni_pc_order", "beta_dist_alpha", "randn_source", "batch_cond_uncond", "img2img_fix_steps"):
        assert key in out, key
    return out


def _classes_from(path: Path, names) -> dict:
    """Execute only the named class definitions of a source file (their bodies need no imports)."""
    tree = ast.parse(path.read_text())
    ns = {}
    body = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name in names]
    exec(compile(ast.Module(body, []), str(path), "exec"), ns)
    return {n: ns[n] for n in names}


class A1111:
    """Load A1111's sampling modules once; `run(case, ...)` renders one case."""

    def __init__(self, a1111: Path, kdiffusion: Path):
        a1111, kdiffusion = Path(a1111), Path(kdiffusion)
        import diffusers.models.unets.unet_2d_condition  # noqa: F401  (before the torchvision stand-in below)

        # torchvision is imported by k_diffusion/utils.py for image helpers the samplers never use
        tv = _module("torchvision")
        tv.transforms = _module("torchvision.transforms")
        tv.transforms.functional = _module("torchvision.transforms.functional")
        _package("k_diffusion", kdiffusion / "k_diffusion")
        import k_diffusion.external
        import k_diffusion.sampling

        self.kd = k_diffusion
        self.defaults = option_defaults(a1111)
        self.opts = types.SimpleNamespace(**self.defaults)
        self.opts.randn_source = RANDN_SOURCE
        self.state = types.SimpleNamespace(interrupted=False, skipped=False, sampling_step=0, sampling_steps=0,
                                           current_latent=None)
        cpu = torch.device("cpu")
        _package("modules", a1111 / "modules")
        _module("modules.shared", opts=self.opts, state=self.state, device=cpu, sd_model=None,
                parallel_processing_allowed=True, total_tqdm=types.SimpleNamespace(update=lambda: None),
                cmd_opts=types.SimpleNamespace())
        _module("modules.devices", cpu=cpu, device=cpu, dtype=torch.float32, dtype_unet=torch.float32,
                dtype_vae=torch.float32, unet_needs_upcast=False, autocast=lambda *a, **k: torch.no_grad())
        for name in ("images", "sd_vae_approx", "sd_vae_taesd", "sd_models", "sd_samplers"):
            _module("modules." + name)
        cb = _classes_from(a1111 / "modules" / "script_callbacks.py",
                           ["ExtraNoiseParams", "CFGDenoiserParams", "CFGDenoisedParams", "AfterCFGCallbackParams"])
        _module("modules.script_callbacks", **cb, extra_noise_callback=lambda p: None,
                cfg_denoiser_callback=lambda p: None, cfg_denoised_callback=lambda p: None,
                cfg_after_cfg_callback=lambda p: None)
        from modules import prompt_parser, rng, sd_samplers_common, sd_samplers_kdiffusion, sd_samplers_timesteps

        self.prompt_parser, self.rng, self.common = prompt_parser, rng, sd_samplers_common
        self.configs = {c.name: c for c in sd_samplers_kdiffusion.samplers_data_k_diffusion
                        + sd_samplers_timesteps.samplers_data_timesteps}
        self.kdiffusion_names = {c.name for c in sd_samplers_kdiffusion.samplers_data_k_diffusion}
        self.shared = sys.modules["modules.shared"]

    # ---- the model A1111 would hold --------------------------------------------------------------------------
    def set_model(self, recorder):
        """Make `recorder` (eps = f(x, t, context)) the loaded SD 1.x model."""
        # ldm register_schedule: betas = linspace(sqrt(0.00085), sqrt(0.012), 1000, float64)^2, cumprod in float64,
        # stored as a float32 buffer
        betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
        ac = torch.tensor(np.cumprod(1.0 - betas.numpy(), axis=0), dtype=torch.float32)

        def apply_model(x, t, cond):
            context = torch.cat(cond["c_crossattn"], 1)  # ldm DiffusionWrapper, conditioning_key "crossattn"
            return recorder(x.float(), t.float(), context)  # sd_hijack_unet.apply_model casts x and t

        self.shared.sd_model = types.SimpleNamespace(
            alphas_cumprod=ac, alphas_cumprod_original=ac, parameterization="eps", is_sdxl=False,
            is_sdxl_inpaint=False, cond_stage_key="txt", model=types.SimpleNamespace(conditioning_key="crossattn"),
            apply_model=apply_model)
        self.recorder = recorder

    # ---- one generation --------------------------------------------------------------------------------------
    def conds(self, cond, uncond, steps):
        """Prompt and negative as A1111's prompt_parser hands them to the sampler (one prompt, no schedule)."""
        pp = self.prompt_parser
        c = pp.MulticondLearnedConditioning(shape=(1,), batch=[[pp.ComposableScheduledPromptConditioning(
            [pp.ScheduledPromptConditioning(end_at_step=steps, cond=cond[0])], 1.0)]])
        uc = [[pp.ScheduledPromptConditioning(end_at_step=steps, cond=uncond[0])]]
        return c, uc

    def processing(self, steps, schedule, seed, shape, strength=None):
        """The attributes of StableDiffusionProcessing that the samplers read, as processing.py sets them."""
        o = self.opts
        return types.SimpleNamespace(
            steps=steps, cfg_scale=7.0, scheduler=schedule, hr_scheduler=None, is_hr_pass=False,
            sampler_noise_scheduler_override=None, extra_generation_params={}, eta=None,
            s_min_uncond=o.s_min_uncond, s_churn=o.s_churn, s_tmin=o.s_tmin, s_tmax=o.s_tmax or float("inf"),
            s_noise=o.s_noise, denoising_strength=strength, seeds=[seed], all_seeds=[seed], iteration=0,
            batch_size=1, scripts=None, refiner_checkpoint_info=None, refiner_switch_at=None, image_cfg_scale=None,
            rng=self.rng.ImageRNG(shape, [seed], subseeds=[seed + 1], subseed_strength=0.0,
                                  seed_resize_from_h=0, seed_resize_from_w=0))

    def run(self, sampler, schedule, steps, cond, uncond, *, seed, shape, sgm=False, init_latents=None,
            strength=None):
        """Final latent (UNet space) of A1111 txt2img (init_latents None) or img2img, plus what the sampler saw:
        {"latent", "sigmas" (k-diffusion) or "timesteps" (DDIM/PLMS/UniPC), "calls" (UNet (t, batch) pairs),
         "start", "infotext" (extra_generation_params), "noise" (the first rng draw)}."""
        self.opts.sgm_noise_multiplier = sgm
        config = self.configs[sampler]
        s = config.constructor(self.shared.sd_model)
        s.config = config
        seen = {}
        inner = s.func

        @functools.wraps(inner)  # inspect.signature(s.func) must still see the sampler's parameters
        def func(model, x, *a, **kw):
            seen["start"] = x.clone()
            for k in ("sigmas", "timesteps"):
                if k in kw:
                    seen[k] = kw[k].detach().clone()
            return inner(model, x, *a, **kw)

        s.func = func
        p = self.processing(steps, schedule, seed, shape, strength)
        c, uc = self.conds(cond, uncond, steps)
        self.recorder.take()
        with torch.no_grad():
            x = p.rng.next()  # processing.py: x = self.rng.next() (txt2img) / noise (img2img)
            if init_latents is None:
                out = s.sample(p, x, c, uc, image_conditioning=x.new_zeros(x.shape[0], 5, 1, 1))
            else:
                init = torch.as_tensor(init_latents)
                if self.opts.initial_noise_multiplier != 1.0:
                    x = x * self.opts.initial_noise_multiplier
                out = s.sample_img2img(p, init, x, c, uc, image_conditioning=init.new_zeros(init.shape[0], 5, 1, 1))
        calls = self.recorder.take()
        return {"latent": out.float(), "noise": x, "calls": calls, "infotext": dict(p.extra_generation_params),
                **seen}
