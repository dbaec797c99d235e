"""Lab: owns a model's loaded components and runs txt2img, img2img, inpaint, outpaint and the refiner handoff.

Every mode is a stock diffusers pipeline built over the same component objects (no reload, no copy); labkit
adds the parts A1111 users expect: A1111 sampler names, seeds with reproducible noise, clip skip, size
checks, mask blur and "only masked", and a Result carrying the full recipe.
"""

import functools
from time import perf_counter

from . import checks, families
from .errors import BadInput
from .limits import Limits, decode_note, decode_plan, device_weights
from .memory import offloaded
from .lora.runs import load_refiner_loras, lora_record, with_lora_tags
from .params import Params
from .steps import step_callbacks
from .unet_hooks import cast_conditioning

TORCH_DTYPES = ("float32", "float16", "bfloat16")  # the dtypes a Lab runs in
# pipeline constructor flags labkit always sets (no safety checker, no invisible watermark: reproducible pixels)
PIPELINE_FLAGS = {"requires_safety_checker": False, "add_watermarker": False}


class Lab:
    """A loaded model. Make one with `labkit.open(...)`; then call txt2img / img2img / inpaint / outpaint.

    Every call is checked before any work (settings, sampler, images, refiner, and the run's estimated time and
    memory against `limits`, a `labkit.Limits`; `lab.limits = None` turns that check off)."""

    def __init__(self, components: dict, family: str, *, variant=None, device="cpu", dtype="float32",
                 name: str = "", source=None, file_hash=None, weight_files=None, offload=None):
        if family not in families.FAMILIES:
            raise BadInput(f"Unknown family {family!r}; labkit runs {', '.join(families.FAMILIES)}.")
        self.components = components
        self.family = family
        self.family_record = families.family(family)
        self.variant = variant
        self.device = device
        self.dtype = dtype
        self.name = name
        self.source = source
        # a function giving the hash is memoized once, here: results share it without holding the Lab itself
        self._file_hash = functools.cache(file_hash) if callable(file_hash) else file_hash
        self.weight_files = weight_files  # labkit.originals.WeightFiles the weights came from, or None
        self.offload = offload  # None, "model" or "sequential": diffusers' CPU offload during each run
        self.scheduler_config = dict(components["scheduler"].config)
        self.text_encoder_dtype = dtype
        self.config_flags = self.family_record.pipeline_flags()
        from .lora import LoraManager

        self.loras = LoraManager(self)
        from .controlnet.manager import ControlNets

        self.controlnets = ControlNets(self)
        self._pipes = {}
        self.limits = Limits()
        self._weights = (None, 0)  # (what the count was made of, bytes)

    # ---- pipelines -------------------------------------------------------------------------------------
    @property
    def layout(self) -> str:
        """The pipeline layout: "sd", "xl" or "refiner" (`labkit.families.LAYOUTS`)."""
        return self.family_record.layout

    @property
    def pipe(self):
        """The diffusers pipeline underneath (txt2img; img2img for a refiner), for anything labkit does not wrap."""
        return self.pipeline("img2img" if self.layout == "refiner" else "txt2img")

    def pipeline(self, mode: str):
        """The diffusers pipeline for `mode`, built once over this Lab's shared components."""
        if mode not in self._pipes:
            from .quiet import quiet_libraries

            with quiet_libraries():
                self._pipes[mode] = self._build_pipeline(mode)
        return self._pipes[mode]

    def _build_pipeline(self, mode: str):
        import inspect

        import diffusers

        from .arguments import mode as check_mode

        check_mode(self, mode)
        cls = getattr(diffusers, self.family_record.pipeline(mode))
        accepted = inspect.signature(cls.__init__).parameters
        flags = {**PIPELINE_FLAGS, **self.config_flags}
        kwargs = {k: v for k, v in {**self.components, **flags}.items() if k in accepted}
        for name, par in accepted.items():
            if name not in kwargs and name != "self" and par.default is inspect.Parameter.empty:
                kwargs[name] = None  # optional components labkit does not use (safety checker, image encoder)
        pipe = cls(**kwargs)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    @property
    def model_hash(self) -> str | None:
        """A1111's "Model hash" (AutoV2) of the opened file, computed on first use and cached."""
        return self._file_hash() if callable(self._file_hash) else self._file_hash

    # ---- sizes and settings ----------------------------------------------------------------------------
    @property
    def vae_scale(self) -> int:
        return 2 ** (len(self.components["vae"].config.block_out_channels) - 1)

    @property
    def native_size(self) -> int:
        """The picture side the model was trained at (64 for the toy models, 512 SD1, 1024 SDXL)."""
        return self.components["unet"].config.sample_size * self.vae_scale

    @property
    def weight_bytes(self) -> int:
        """Bytes of every weight and buffer the models hold, for the run estimate; counted again only when a
        component, its dtype or its device changes (counting walks every tensor: milliseconds per call)."""
        from .limits import first_tensor, weight_bytes

        key = tuple((name, id(m), *first_tensor(m)) for name, m in self.components.items())
        if self._weights[0] != key:
            self._weights = (key, weight_bytes(self.components))
        return self._weights[1]

    def memory(self):
        """A `labkit.memory.MemoryReport`: each model's device, dtype and bytes, the copies LoRAs keep, the
        process's resident memory and the GPU's allocations (print it for a table)."""
        from .memory import report

        return report(self)

    def params(self, params: Params | None = None, prompt: str | None = None, **overrides) -> Params:
        """`params` (or defaults) with `prompt` and overrides applied and checked: every setting's type and range
        (`Params`), the sampler, schedule and eta against diffusers, clip_skip against the text encoders."""
        from .arguments import settings

        return settings(self, params, prompt, overrides)

    def _check_call(self, p: Params, mode: str, **inputs):
        """`labkit.arguments.call`: everything a public mode checks before any work; returns (image, mask)."""
        from .arguments import call

        return call(self, p, mode, **inputs)

    def __repr__(self) -> str:
        variant = f" {self.variant}" if self.variant else ""
        return f"<Lab {self.name or self.family} ({self.family}{variant}) on {self.device}/{self.dtype}>"

    # ---- public modes ----------------------------------------------------------------------------------
    def txt2img(self, prompt=None, params=None, *, refiner=None, refiner_loras=(), on_step=None, hires_lab=None,
                **overrides):
        """Generate from text; `hires=True` adds A1111's hires fix (`labkit.hires`; `hires_lab=<Lab>` runs its
        second pass on another model of the family). `refiner=<Lab>` hands the latents to a refiner at `switch_at`
        of the schedule (with hires fix: of the second pass);
        LoRAs touch the base only, unless `refiner_loras=[path or (path, weight), ...]` loads some into the
        refiner (family-checked against it: an SDXL base LoRA does not fit the refiner's UNet). A `cfg` below 1
        runs as CFG 1 (diffusers turns guidance off there; A1111 and ComfyUI extrapolate toward the negative
        prompt): the Result's notes say so (see `Params`)."""
        p = self.params(params, prompt, **overrides)
        from .arguments import refiner_requests

        self._check_call(p, "txt2img", refiner_lab=refiner, on_step=on_step, hires_lab=hires_lab)
        requests = refiner_requests(refiner_loras)
        if refiner is not None:
            load_refiner_loras(refiner, requests)
        elif requests:
            raise BadInput("refiner_loras= needs refiner=<Lab>.")
        if self.variant == "inpaint":  # an inpainting UNet draws from scratch with a full mask, as A1111 does
            from PIL import Image

            size = (p.width or self.native_size, p.height or self.native_size)
            blank = Image.new("RGB", size, (127, 127, 127))
            return self.run_pass("inpaint", p.replace(strength=1.0, mask_blur=0), image=blank,
                             mask=Image.new("L", size, 255), refiner=refiner, on_step=on_step, label="txt2img")
        if p.hires:
            from .hires import run

            return run(self, p, refiner=refiner, on_step=on_step, hires_lab=hires_lab)
        return self.run_pass("txt2img", p, refiner=refiner, on_step=on_step)

    def img2img(self, image, prompt=None, params=None, *, refiner=None, on_step=None, **overrides):
        """Redraw `image` (PIL, or a NumPy array) starting `strength` of the way into the schedule."""
        p = self.params(params, prompt, **overrides)
        image, _ = self._check_call(p, "img2img", image=image, refiner_lab=refiner, on_step=on_step)
        if self.variant == "inpaint":  # an inpainting UNet redraws the whole picture through a full mask
            from PIL import Image

            full = Image.new("L", image.size, 255)
            return self.run_pass("inpaint", p.replace(mask_blur=0), image=image, mask=full, refiner=refiner,
                             on_step=on_step, label="img2img")
        return self.run_pass("img2img", p, image=image, refiner=refiner, on_step=on_step)

    def inpaint(self, image, mask, prompt=None, params=None, *, refiner=None, on_step=None, **overrides):
        """Redraw the white part of `mask` (PIL "L", same size as `image`); the rest keeps the original pixels."""
        p = self.params(params, prompt, **overrides)
        image, mask = self._check_call(p, "inpaint", image=image, mask=mask, refiner_lab=refiner, on_step=on_step)
        return self.run_pass("inpaint", p, image=image, mask=mask, refiner=refiner, on_step=on_step)

    def outpaint(self, image, prompt=None, params=None, *, left=0, right=0, top=0, bottom=0, on_step=None,
                 **overrides):
        """Extend `image` by the given margins (pixels, multiples of 8) and paint the new area."""
        from .images import check_margins, extend_canvas, normalize

        overrides.setdefault("strength", 1.0)
        p = self.params(params, prompt, **overrides)
        margins = check_margins(left=left, right=right, top=top, bottom=bottom)
        image = normalize(image, "image")
        w, h = image.width + margins["left"] + margins["right"], image.height + margins["top"] + margins["bottom"]
        size = tuple(max(self.vae_scale, n - n % self.vae_scale) for n in (w, h))  # the canvas, before it is made
        self._check_call(p.replace(width=None, height=None), "outpaint", image=image, on_step=on_step, size=size)
        canvas, mask = extend_canvas(image, **margins)
        return self.run_pass("inpaint", p.replace(width=None, height=None), image=canvas, mask=mask,
                         on_step=on_step, label="outpaint")

    # ---- the one generation path -----------------------------------------------------------------------
    def run_pass(self, mode, p, *, image=None, mask=None, refiner=None, on_step=None, label=None, **start):
        """One generation, all or nothing: an error or an interrupt (Ctrl-C) at any point leaves this Lab (and
        the refiner) as it was before the call: the same weights, schedulers and pipelines. The public modes and
        hires fix's passes call it (`start`: `labkit.pipeline_inputs.call_kwargs`' init_latents, fixed_steps)."""
        labs = [self] + ([refiner] if refiner is not None else [])
        saved = [lab.snapshot() for lab in labs]
        try:
            return self._generate(mode, p, image=image, mask=mask, refiner=refiner, on_step=on_step, label=label,
                                  **start)
        except BaseException:
            for lab, state in zip(labs, saved):
                lab.rollback(state)
            raise

    def snapshot(self) -> tuple:
        """The state a generation changes (the folded LoRAs, each pipeline's scheduler), for `rollback`."""
        return self.loras.state(), {mode: pipe.scheduler for mode, pipe in self._pipes.items()}

    def rollback(self, state: tuple) -> None:
        """Put back a `snapshot()`: the weights' LoRAs, the schedulers; pipelines built since are dropped."""
        loras, schedulers = state
        self.loras.restore(loras)
        self._pipes = {mode: pipe for mode, pipe in self._pipes.items() if mode in schedulers}
        for mode, scheduler in schedulers.items():
            self._pipes[mode].scheduler = scheduler

    def _generate(self, mode, p, *, image=None, mask=None, refiner=None, on_step=None, label=None, **start_at):
        from . import images as im

        start = perf_counter()
        p, image, notes = self._resolve(p, image)
        scheduler = self.scheduler(p, mode, fixed_steps=start_at.get("fixed_steps", False))
        pipe = self.pipeline(self._pipeline_mode(mode, scheduler))
        crop = None
        if mask is not None:
            mask = im.blur(pipe, im.check_mask(mask, image), p.mask_blur)
            crop = im.crop_region(pipe, mask, p) if p.only_masked else None
        pipe.scheduler = scheduler
        timings, stages = {}, {"base": self.name or self.family}
        from .controlnet.run import for_lab, record

        controls = for_lab(self, p, mode, image)

        from .prompts import extract_networks

        _, tags, unsupported = extract_networks(p.prompt)
        notes += [f"{tag} ignored: labkit applies only <lora:...> tags" for tag in unsupported]
        with self.loras.for_call(tags) as base_loras, offloaded(self, pipe):
            latents = self._denoise(mode, pipe, p, image, mask, crop, refiner, on_step, timings, controls, start_at)
        loras = [lora_record(a, "base") for a in base_loras]
        if refiner is not None:
            t = perf_counter()
            with refiner.loras.for_call(()) as refiner_applied:  # a fixed-steps pass: its whole schedule
                whole = int(p.steps / min(p.strength, 0.999)) if start_at.get("fixed_steps") else p.steps
                latents = refiner._refine(latents, p.replace(steps=whole))
            loras += [lora_record(a, "refiner") for a in refiner_applied]
            timings["refiner"] = perf_counter() - t
            stages["refiner"] = refiner.name or refiner.family
            if base_loras:
                notes.append("LoRAs touched the base only: " + ", ".join(a.name for a in base_loras) +
                             " (pass refiner_loras= to load some into the refiner)")
        p = p.replace(prompt=with_lora_tags(p.prompt, base_loras, tags))
        p, control_maps = record(controls, p, notes, refiner)

        t = perf_counter()
        weights = device_weights(self) + (device_weights(refiner) if refiner is not None else 0)
        plan, _ = decode_plan(self, p.width, p.height, p.batch_size, weights)
        notes += [n for n in [decode_note(self, plan, p.width, p.height, p.batch_size)] if n]
        with offloaded(self, pipe):
            images = self.decode(latents, pipe=pipe, notes=notes, plan=plan)
        if mask is not None:
            images = [im.overlay(pipe, mask, image, out, p, crop) for out in images]
        timings["decode"] = perf_counter() - t
        result = self._result(pipe, p, images, label or mode, timings, notes, stages, loras, refiner)
        result.latents = latents.detach().float().cpu()  # (B, C, h, w), scaled as the UNet sees them
        result.control_maps = control_maps
        timings["total"] = perf_counter() - start  # everything the call spent (the file's hash is not needed yet)
        return result

    def _resolve(self, p: Params, image):
        """(params with seed, size, noise mode and model filled in, the RGB init image or None, notes)."""
        from . import images as im
        from .noise import effective_mode, resolve_seed, warn_fallback

        noise_mode, note = effective_mode(p.noise)
        warn_fallback(note)
        notes = [note] if note else []
        if p.cfg < 1:
            notes.append(f"cfg={p.cfg:g} is below 1: diffusers turns guidance off at CFG <= 1, so this is CFG 1's "
                         f"picture (the prompt's prediction alone); A1111 and ComfyUI would extrapolate toward the "
                         f"negative prompt (CFG 0: the negative prompt alone)")
        if image is not None:
            notes += [n for n in [im.alpha_note(image)] if n]
            image = im.to_rgb(image)
            width, height, note = im.target_size(image, p.width, p.height, self.vae_scale)
            notes += [note] if note else []
        else:
            width, height = p.width or self.native_size, p.height or self.native_size
        p = p.replace(seed=resolve_seed(p.seed), noise=noise_mode, width=width, height=height,
                      model=p.model or self.name)
        return p, image, notes

    def _denoise(self, mode, pipe, p: Params, image, mask, crop, refiner, on_step, timings: dict, controls=None,
                 start_at=None):
        """Encode the prompt and run the pipeline to latents (stopping at `switch_at` when a refiner follows)."""
        from .pipeline_inputs import call_kwargs

        t = perf_counter()
        schedule = self.encode_prompt(p)
        timings["text"] = perf_counter() - t
        t = perf_counter()
        call = call_kwargs(self, mode, pipe, p, image, mask, crop, **(start_at or {}))
        if refiner is not None:
            call["denoising_end"] = p.switch_at
        call.update(step_callbacks(pipe, schedule, p.cfg > 1, on_step))
        from contextlib import nullcontext

        with controls.attached(pipe, p.steps if mode == "txt2img" else None) if controls else nullcontext():
            latents = pipe(**{"num_inference_steps": p.steps, **call}, **schedule[0], guidance_scale=p.cfg,
                           num_images_per_prompt=1, output_type="latent", **self._eta(pipe, p)).images
        plan = getattr(pipe.scheduler, "labkit_plan", None)
        timings["denoise"] = perf_counter() - t
        return latents if plan is None or refiner is not None else latents * plan.end_scale

    def _result(self, pipe, p: Params, images, mode, timings, notes, stages, loras, refiner):
        from .noise import batch_seeds
        from .recipes.records import ModelRecord
        from .result import Result

        model = ModelRecord(name=self.name, family=self.family, hash=self._file_hash, dtype=self.dtype,
                            device=str(self.device), loras=tuple(loras),
                            scheduler={"class": type(pipe.scheduler).__name__, "config": dict(pipe.scheduler.config)},
                            refiner=None if refiner is None else refiner.name or refiner.family)
        return Result(images=images, params=p, seeds=batch_seeds(p.seed, p.batch_size, p.noise), mode=mode,
                      timings=timings, notes=notes, model=model, stages=stages)

    def scheduler(self, p: Params, mode: str = "txt2img", fixed_steps: bool = False):
        """The diffusers scheduler a run of `p` uses: `p.sampler` following the schedule, timesteps and start of
        `p.noise`'s tool (A1111 or ComfyUI) where labkit can make it (`labkit.sampling`). A refiner finishing a
        base's run (mode "txt2img") follows the same schedule from where the base stopped. A fresh object each
        call (it carries the run's plan)."""
        from .sampling.start import scheduler_for

        return scheduler_for(self, p, mode, fixed_steps)

    def _pipeline_mode(self, mode: str, scheduler) -> str:
        """img2img that follows a tool's plan runs in the txt2img pipeline from latents labkit noised itself
        (diffusers' SD img2img pipeline draws its own noise and cuts the schedule its own way)."""
        planned = getattr(scheduler, "labkit_plan", None) is not None
        return "txt2img" if mode == "img2img" and planned and self.variant != "inpaint" else mode

    def _eta(self, pipe, p: Params) -> dict:
        return {"eta": p.eta} if p.eta is not None else {}

    def encode_prompt(self, p: Params, batch_size: int | None = None) -> list[dict]:
        """Embeddings for each sampler step (A1111 prompt syntax, weights, BREAK, schedules, clip skip): steps
        with the same prompt share one dict. An empty negative prompt becomes zeros where the model's config
        says so (SDXL bases: force_zeros_for_empty_prompt, as A1111 does), else the encoding of ""."""
        from .prompts import encode_schedule

        if not isinstance(p, Params):
            raise BadInput(f"encode_prompt takes a labkit.Params, not {checks.kind(p)}"
                           + (": lab.encode_prompt(Params(prompt=...))." if isinstance(p, str) else "."))
        if batch_size is not None:
            checks.whole("batch_size", batch_size, low=1, example=1)
        zeros = self.config_flags.get("force_zeros_for_empty_prompt", False)
        return encode_schedule(self, p.prompt, p.negative_prompt, steps=p.steps, clip_skip=p.clip_skip,
                               emphasis=p.emphasis, zero_empty_negative=zeros,
                               batch_size=batch_size or p.batch_size)

    def encode_image(self, image, p: Params, *, pipe=None):
        """VAE latents (mean, scaled) of `image` resized to `p`'s size: deterministic, no noise drawn (what img2img
        starts from before noising). (1, 4, h, w)"""
        import torch

        pipe = pipe or self.pipeline("img2img")
        vae = self.components["vae"]
        x = pipe.image_processor.preprocess(image, height=p.height, width=p.width)  # (1, 3, H, W) in [-1, 1]
        with torch.no_grad():
            latents = vae.encode(x.to(pipe._execution_device, vae.dtype)).latent_dist.mode()
        return latents * vae.config.scaling_factor

    def decode(self, latents, *, pipe=None, notes=None, plan: str | None = None) -> list:
        """PIL pictures of UNet-space latents (B, C, h, w), decoded by the VAE (whole, or sliced or tiled as
        `limits.decode_plan` finds it fits when `plan` is None; a float16 VAE that overflows, as SDXL's does, is
        retried in float32 and says so in `notes`) and made 8-bit as A1111 and ComfyUI make them (truncated)."""
        from .images import decode_latents, to_pictures

        if plan is None:
            b, _, h, w = latents.shape
            plan, _ = decode_plan(self, w * self.vae_scale, h * self.vae_scale, b)
        return to_pictures(decode_latents(self.components["vae"], latents, notes, plan))

    # ---- refiner ---------------------------------------------------------------------------------------
    def _refine(self, latents, p: Params):
        """Finish the base's partly denoised latents from `switch_at` of the schedule to the end."""
        pipe = self.pipeline("img2img")
        pipe.scheduler = self.scheduler(p)
        with offloaded(self, pipe):
            schedule = self.encode_prompt(p)
            return pipe(image=latents, denoising_start=p.switch_at, num_inference_steps=p.steps,
                        guidance_scale=p.cfg, num_images_per_prompt=1, output_type="latent", **schedule[-1],
                        **self._eta(pipe, p)).images

    def reproduce(self, source, *, image=None, mask=None, refiner=None, control_images=None, hires_lab=None,
                  **overrides):
        """Regenerate from the recipe in `source` (PNG path, PIL image, bytes or infotext); the Result's `.report`
        says which fields were honoured and which differ, and why (`control_images`: see labkit.reproduce)."""
        from .reproduce import reproduce

        if refiner is not None:
            from .arguments import refiner as check_refiner

            check_refiner(self, refiner)
        return reproduce(self, source, image=image, mask=mask, refiner=refiner, control_images=control_images,
                         hires_lab=hires_lab, **overrides)

    # ---- components ------------------------------------------------------------------------------------
    def save_single_file(self, path, overwrite: bool = False):
        """Write this model as an A1111/ComfyUI-layout single .safetensors file."""
        from pathlib import Path

        from .export import save_single_file
        from .files import exists_message

        checks.flag("overwrite", overwrite)
        if Path(checks.path("path", path)).suffix.lower() != ".safetensors":
            raise BadInput(f"{path}: a single-file checkpoint is written as .safetensors; end the name with it.")
        if Path(path).exists() and not overwrite:
            raise BadInput(exists_message(path))
        self.loras.unfuse()  # the file holds the model's own weights, never folded LoRAs
        return save_single_file(self.components, self.family_record.checkpoint, path,
                                metadata={"labkit.family": self.family}, overwrite=overwrite)

    def set_text_encoder_dtype(self, dtype: str) -> None:
        """Run the text encoders in `dtype` ("float16" mirrors ComfyUI, which keeps its text encoder in half
        precision by default, and A1111's half-precision runs); their output is cast to the UNet's dtype, as those
        tools cast it. "float32" (labkit's default on the CPU) gives the most exact embeddings; going back to it
        keeps the weights as half precision rounded them (reopen the model for the file's own weights)."""
        import torch

        if dtype not in TORCH_DTYPES:
            raise BadInput(f"text encoder dtype {dtype!r}: use one of {TORCH_DTYPES}.")
        for name in self.family_record.text_encoders:
            if self.components.get(name) is not None:
                self.components[name].to(getattr(torch, dtype))
        unet = self.components["unet"]
        if getattr(unet, "labkit_cast_hook", None) is None:  # fp16 embeddings into a float32 UNet: cast them
            unet.labkit_cast_hook = unet.register_forward_pre_hook(cast_conditioning, with_kwargs=True)
        self.text_encoder_dtype = dtype

    def load_embedding(self, path, token: str):
        """Load a textual-inversion embedding (A1111 `emb_params`, or SDXL `clip_l`/`clip_g`) as `token`."""
        from .embeddings import load_embedding

        checks.path("path", path)
        if not checks.text("token", token).strip() or any(c.isspace() for c in token):
            raise BadInput(f"token={token!r}: give the word that will call the embedding in prompts, without spaces, "
                           f"e.g. token='<my-style>'.")
        return load_embedding(self, path, token)

