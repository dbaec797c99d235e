"""Train a LoRA on a handful of captioned images with PEFT; write it as a kohya .safetensors file.

The objective is the one of diffusers' text-to-image LoRA example: encode the image with the VAE, add DDPM noise
at a uniformly drawn timestep, and regress the UNet's prediction onto the noise (or the velocity, for
v-prediction models). PEFT adds and trains the low-rank matrices; labkit then renames PEFT's state dict to
kohya's names (SGM UNet names for SDXL, `lora_te_`/`lora_te1_`/`lora_te2_`), adds `.alpha` tensors and `ss_*`
metadata, so A1111, ComfyUI and `lab.loras.load` read the file. The Lab is left exactly as it was.
"""

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .. import checks
from ..errors import BadInput
from ..families import FAMILIES
from .formats import flat, kohya_prefix, text_path

ADAPTER = "labkit_train"
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]  # attention projections, as diffusers' example trains
# targets="all": also the transformer blocks' projections and feed-forward layers and the ResNet convolutions,
# what kohya's LoCon (networks.lora with conv_dim) trains
LOCON_TARGETS = ["proj_in", "proj_out", "ff.net.0.proj", "ff.net.2", "conv1", "conv2", "conv_shortcut"]
TARGET_SETS = {"attention": UNET_TARGETS, "all": UNET_TARGETS + LOCON_TARGETS}
LR_SCHEDULES = ("constant", "cosine")
SAVE_DTYPES = ("float32", "float16")
TEXT_TARGETS = {"attention": ["q_proj", "k_proj", "v_proj", "out_proj"]}
TEXT_TARGETS["all"] = TEXT_TARGETS["attention"] + ["fc1", "fc2"]  # kohya's text-encoder set: attention and MLP
MAX_GRAD_NORM = 1.0  # gradient clipping, kohya's and diffusers' default
SCHEDULER_KEYS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas",
                  "prediction_type", "timestep_spacing", "steps_offset")


@dataclass
class TrainResult:
    """path: the kohya file written; losses: one per step; peft_state: {component: PEFT state dict} (the same
    weights under PEFT names, e.g. for diffusers' save_lora_weights); config: the UNet's LoraConfig."""

    path: Path
    losses: list
    peft_state: dict
    config: object


def train(lab, images, captions, rank=4, steps=200, lr=1e-4, out="lora.safetensors", trigger=None, seed=0,
          alpha=None, text_encoder=False, batch_size=None, size=None, targets="attention", lr_schedule="constant",
          ema=0.0, save_dtype="float32", caption_dropout=0.0, progress=True, overwrite=False) -> TrainResult:
    """Fine-tune a LoRA of `rank` (alpha defaults to rank) on `images` (PIL) with their `captions`.

    `trigger` is put in front of every caption; `text_encoder=True` trains the text encoders too.
    `targets`: "attention" (the attention projections) or "all" (also the UNet's convolutions and feed-forward
    layers, as kohya's LoCon, and the text encoders' MLPs). `lr_schedule`: "constant" or "cosine" (decays to 0
    by the last step). `ema`: the decay of an exponential moving average of the LoRA weights, which is what gets
    written (0: the last step's weights). Gradients are clipped to norm 1. `save_dtype`: "float32" or "float16"
    (kohya's --save_precision; half the file size). `caption_dropout`: the share of samples trained with an
    empty caption (kohya's caption_dropout_rate), so the LoRA also shapes the unconditional prediction that
    classifier-free guidance subtracts.
    Progress shows with tqdm; returns TrainResult(path, losses, ...). Writes `out` (kohya format)."""
    import torch

    _check_numbers(lab, rank=rank, steps=steps, lr=lr, seed=seed, alpha=alpha, batch_size=batch_size, size=size,
                   text_encoder=text_encoder, trigger=trigger, progress=progress, overwrite=overwrite)
    images, captions = _check_data(images, captions)
    out = _check(lab, images, captions, out, overwrite, targets, lr_schedule, ema, save_dtype, caption_dropout)
    _check_cost(lab, steps, batch_size or min(4, len(images)), size or lab.native_size)
    alpha = rank if alpha is None else alpha
    prompts = [f"{trigger}, {c}" if trigger else c for c in captions]
    loras = getattr(lab, "loras", None)
    if loras is not None:
        loras.unfuse()  # train on the model's own weights
    generator = torch.Generator().manual_seed(seed)
    components = ["unet"] + (_text_components(lab) if text_encoder else [])
    configs = _configs(rank, alpha, components, targets)
    with _adapters(lab, configs, seed) as params:
        losses = _optimise(lab, components, params, _latents(lab, images, size), prompts, steps, lr, lr_schedule,
                           batch_size or min(4, len(images)), ema, caption_dropout, generator, progress)
        peft_state = _peft_state(lab, components)
    meta = kohya_metadata(lab, out, prompts, rank, alpha, steps=steps, lr=lr, lr_schedule=lr_schedule,
                          targets=targets, seed=seed, trigger=trigger, text_encoder=text_encoder, n_images=len(images),
                          ema=ema, caption_dropout=caption_dropout)
    write_kohya(lab, peft_state, alpha, out, meta, save_dtype)
    return TrainResult(out, losses, peft_state, configs["unet"])


def _check_numbers(lab, *, rank, steps, lr, seed, alpha, batch_size, size, text_encoder, trigger, progress,
                   overwrite) -> None:
    """BadInput naming the fix for a setting of train() that cannot run (types and ranges)."""
    if not (hasattr(lab, "components") and hasattr(lab, "layout")):
        raise BadInput(f"train() trains on a Lab (labkit.open(...)), not {checks.kind(lab)}.")
    checks.whole("rank", rank, low=1, example=4)
    checks.whole("steps", steps, low=1, example=200)
    if checks.real("lr", lr, example="1e-4") <= 0:
        raise BadInput(f"lr={lr}: the learning rate is above 0, e.g. 1e-4.")
    checks.whole("seed", seed, low=0, example=0)
    if alpha is not None and checks.real("alpha", alpha, example=4) <= 0:
        raise BadInput(f"alpha={alpha}: LoRA alpha is above 0 (it defaults to the rank).")
    if batch_size is not None:
        checks.whole("batch_size", batch_size, low=1, example=4)
    if size is not None and (checks.whole("size", size, low=8, example=lab.native_size) % 8):
        raise BadInput(f"size={size} is not a multiple of 8 (the VAE works in 8-pixel cells).")
    for name, value in (("text_encoder", text_encoder), ("progress", progress), ("overwrite", overwrite)):
        checks.flag(name, value)
    checks.text("trigger", trigger, allow_none=True)


def _check_cost(lab, steps, batch, side) -> None:
    """TooLarge when the training run's estimated time or memory is over the Lab's limits (`lab.limits`)."""
    from .. import limits
    from ..params import Params

    limits.check(lab, Params(steps=steps, batch_size=batch, width=side, height=side, sampler="LoRA training"),
                 "train")


def _check_data(images, captions) -> tuple[list, list]:
    """(RGB images, captions) once both are lists of pictures and texts."""
    from ..images import to_rgb

    for name, value in (("images", images), ("captions", captions)):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise BadInput(f"{name}= takes a list, not {checks.kind(value)}.")
    images = [to_rgb(image, f"images[{i}]") for i, image in enumerate(images)]
    captions = [checks.text(f"captions[{i}]", caption) for i, caption in enumerate(captions)]
    return images, captions


def _check(lab, images, captions, out, overwrite, targets, lr_schedule, ema, save_dtype, caption_dropout) -> Path:
    if not (checks.is_real(caption_dropout) and 0.0 <= caption_dropout < 1.0):
        raise BadInput(f"caption_dropout={caption_dropout!r}: the share of empty captions is in [0, 1), e.g. 0.1.")
    if not isinstance(save_dtype, str) or save_dtype not in SAVE_DTYPES:
        raise BadInput(f"save_dtype={save_dtype!r}: use one of {', '.join(map(repr, SAVE_DTYPES))}.")
    if ema is not None and not (checks.is_real(ema) and 0.0 <= ema < 1.0):
        raise BadInput(f"ema={ema!r}: the moving average's decay is in [0, 1), e.g. 0.999 (0 or None: off).")
    if not isinstance(targets, str) or targets not in TARGET_SETS:
        raise BadInput(f"targets={targets!r}: use one of {', '.join(map(repr, TARGET_SETS))}.")
    if not isinstance(lr_schedule, str) or lr_schedule not in LR_SCHEDULES:
        raise BadInput(f"lr_schedule={lr_schedule!r}: use one of {', '.join(map(repr, LR_SCHEDULES))}.")
    if lab.layout == "refiner":
        raise BadInput(f"LoRAs are trained on a base model; a {lab.family} Lab is a refiner. Train on the base.")
    if not images or len(images) != len(captions):
        raise BadInput(f"train() needs one caption per image: got {len(images)} images and {len(captions)} captions.")
    out = Path(checks.path("out", out))
    if out.suffix != ".safetensors":
        raise BadInput(f"out={str(out)!r}: a LoRA is written as a .safetensors file; end the name with it.")
    if not out.parent.is_dir():
        raise BadInput(f"out={str(out)!r}: the folder {out.parent} does not exist; create it first (checked before "
                       "training, so no run is lost).")
    if out.exists() and not overwrite:
        raise BadInput(f"{out} already exists; pass overwrite=True to replace it.")
    return out


def _text_components(lab) -> list:
    return [c for c in lab.family_record.text_encoders if lab.components.get(c) is not None]


def _configs(rank, alpha, components, targets) -> dict:
    from peft import LoraConfig

    def config(modules):
        return LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian", target_modules=modules)

    return {c: config(TARGET_SETS[targets] if c == "unet" else TEXT_TARGETS[targets]) for c in components}


class _adapters:
    """Context: PEFT adapters injected into the Lab's components; on exit (also on error or interrupt) the
    original layers are put back, with their weights, modes and requires_grad flags untouched."""

    def __init__(self, lab, configs, seed):
        self.models = {c: lab.components[c] for c in configs}
        self.configs, self.seed = configs, seed

    def __enter__(self) -> list:
        import torch
        from peft import inject_adapter_in_model

        self.flags = {c: {n: p.requires_grad for n, p in m.named_parameters()} for c, m in self.models.items()}
        params = []
        for component, model in self.models.items():
            model.requires_grad_(False)
            with torch.random.fork_rng(devices=[]):  # PEFT draws lora_A from the global generator: seed a fork
                torch.manual_seed(self.seed)
                inject_adapter_in_model(self.configs[component], model, adapter_name=ADAPTER)
            for name, p in model.named_parameters():
                if "lora_" in name:
                    p.data = p.data.to(torch.float32)  # train the adapter in float32 even on a float16 model
                    p.requires_grad_(True)
                    params.append(p)
        return params

    def __exit__(self, *exc):
        from diffusers.utils import recurse_remove_peft_layers

        for component, model in self.models.items():
            recurse_remove_peft_layers(model)
            if hasattr(model, "peft_config"):
                del model.peft_config
            for name, p in model.named_parameters():
                p.requires_grad_(self.flags[component][name])
            model.eval()
        return False


def _latents(lab, images, size) -> dict:
    """The VAE's latent distribution (mean, std) of each image, computed once; a fresh sample is drawn per step."""
    import torch

    pipe, vae = lab.pipeline("txt2img"), lab.components["vae"]
    side = size or lab.native_size
    x = torch.cat([pipe.image_processor.preprocess(im, height=side, width=side) for im in images])  # (N, 3, H, W)
    with torch.no_grad():
        dist = vae.encode(x.to(vae.device, vae.dtype)).latent_dist
    return {"mean": dist.mean.float(), "std": dist.std.float(), "side": side}  # (N, 4, H/8, W/8) each


def _encode(lab, prompts) -> dict:
    """UNet conditioning for `prompts`: text embeddings, plus SDXL's pooled embeddings and size ids."""
    pipe = lab.pipeline("txt2img")
    out = pipe.encode_prompt(prompt=list(prompts), device=lab.components["unet"].device, num_images_per_prompt=1,
                             do_classifier_free_guidance=False)
    if lab.layout == "sd":
        return {"encoder_hidden_states": out[0]}  # (B, 77, width)
    return {"encoder_hidden_states": out[0], "added_cond_kwargs": {"text_embeds": out[2]}}  # pooled (B, proj)


def _time_ids(side, n, device):
    import torch

    return torch.tensor([[side, side, 0, 0, side, side]], dtype=torch.float32, device=device).repeat(n, 1)  # (B, 6)


def _noise_scheduler(lab):
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config({k: v for k, v in lab.scheduler_config.items() if k in SCHEDULER_KEYS})


def _optimise(lab, components, params, data, prompts, steps, lr, lr_schedule, batch, ema, caption_dropout,
              generator, progress) -> list:
    """AdamW on `params` for `steps` steps of the diffusion loss, at a constant or cosine-decayed learning rate,
    gradients clipped; with `ema` the params end holding their moving average; a `caption_dropout` share of the
    samples get the empty caption. Returns the loss of each step."""
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    unet, scheduler = lab.components["unet"], _noise_scheduler(lab)
    device, dtype = unet.device, unet.dtype
    n, captions = len(prompts), [*prompts, ""]  # captions[n]: the empty caption, for caption dropout
    frozen_text = None
    if components == ["unet"]:  # frozen text encoders: embed every caption once
        with torch.no_grad():
            frozen_text = _encode(lab, captions)
    optimizer = torch.optim.AdamW(params, lr=lr)
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps) if lr_schedule == "cosine" else None
    average = _ema(params, ema) if ema else None
    models = [lab.components[c] for c in components]
    for model in models:
        model.train()
    losses = []
    bar = tqdm(range(steps), desc="LoRA", disable=not progress)
    for _ in bar:
        idx = torch.randperm(n, generator=generator)[:batch]  # (b,)
        eps = torch.randn(data["mean"][idx].shape, generator=generator)  # (b, 4, h, w)
        latents = (data["mean"][idx] + data["std"][idx] * eps.to(device)) * lab.components["vae"].config.scaling_factor
        noise = torch.randn(latents.shape, generator=generator).to(device)  # (b, 4, h, w)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (len(idx),), generator=generator).to(device)
        noisy = scheduler.add_noise(latents, noise, t)
        target = noise if scheduler.config.prediction_type == "epsilon" else scheduler.get_velocity(latents, noise, t)
        if caption_dropout:  # drawn only when asked, so runs without it keep their random stream
            idx = torch.where(torch.rand(len(idx), generator=generator) < caption_dropout, n, idx)  # n: ""
        cond = _select(frozen_text, idx) if frozen_text else _encode(lab, [captions[i] for i in idx])
        if lab.layout == "xl":
            sizes = _time_ids(data["side"], len(idx), device)  # (b, 6)
            cond["added_cond_kwargs"] = {**cond["added_cond_kwargs"], "time_ids": sizes}
        pred = unet(noisy.to(dtype), t, **cond).sample
        loss = F.mse_loss(pred.float(), target.float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        optimizer.step()
        if decay is not None:
            decay.step()
        if average is not None:
            average.step(params)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    if average is not None:
        average.copy_to(params)
    for model in models:
        model.eval()
    return losses


def _ema(params, decay):
    """diffusers' EMAModel over `params` (its decay warms up over the first steps)."""
    from diffusers.training_utils import EMAModel

    return EMAModel(params, decay=decay, foreach=True)


def _select(cond, idx) -> dict:
    """The batch rows `idx` of precomputed conditioning."""
    out = {"encoder_hidden_states": cond["encoder_hidden_states"][idx]}
    if "added_cond_kwargs" in cond:
        out["added_cond_kwargs"] = {k: v[idx] for k, v in cond["added_cond_kwargs"].items()}
    return out


def _peft_state(lab, components) -> dict:
    from peft import get_peft_model_state_dict

    return {c: {k: v.detach().to("cpu", copy=True) for k, v in
                get_peft_model_state_dict(lab.components[c], adapter_name=ADAPTER).items()}
            for c in components}


def kohya_state(lab, peft_state: dict, alpha: float) -> dict:
    """PEFT state dicts {component: {"<path>.lora_A.weight": ...}} -> one kohya state dict with `.alpha`s.

    UNet names are diffusers paths for SD1/SD2 (as kohya writes them) and LDM/SGM paths for SDXL; text-encoder
    names carry `text_model_` as kohya's do."""
    import torch

    from .targets import ldm_paths

    ldm = ldm_paths(lab.components["unet"]) if lab.layout == "xl" else {}
    out = {}
    for component, state in peft_state.items():
        prefix = kohya_prefix(lab.layout, component)
        for key, tensor in state.items():
            path, _, part = key.rpartition(".lora_")  # "down_blocks.0...to_q", "A.weight"
            name = ldm.get(path, path) if component == "unet" else text_path(path)
            kohya = prefix + flat(name)
            out[f"{kohya}.lora_{'down' if part == 'A.weight' else 'up'}.weight"] = tensor.float().contiguous()
            out[f"{kohya}.alpha"] = torch.tensor(float(alpha))
    return out


def write_kohya(lab, peft_state: dict, alpha: float, out, metadata: dict, dtype: str = "float32") -> Path:
    """Write PEFT state dicts {component: {...}} as a kohya LoRA file at `out` (see `kohya_state`), tensors in
    `dtype`, with `metadata` (e.g. `kohya_metadata`). Atomic: a failure leaves no half-written LoRA. What train()
    writes, public so that LoRAs made otherwise (benchmarks, tests) take the same path. Returns the path."""
    import torch

    from ..files import save_safetensors

    state = {k: v.to(getattr(torch, dtype)) for k, v in kohya_state(lab, peft_state, alpha).items()}
    return save_safetensors(state, out, metadata)


def kohya_metadata(lab, out, prompts, rank, alpha, *, steps=0, lr=0.0, lr_schedule="constant", targets="attention",
                   seed=0, trigger=None, text_encoder=False, n_images=0, ema=0.0, caption_dropout=0.0) -> dict:
    """kohya's `ss_*` training metadata (all strings), as A1111 and civitai read it, for a LoRA of `rank` and
    `alpha` on `lab` written at `out`, trained on `prompts`; the keywords are train()'s settings."""
    out = Path(out)
    tags = Counter(tag.strip() for p in prompts for tag in p.split(",") if tag.strip())
    meta = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(rank),
        "ss_network_alpha": str(alpha),
        "ss_base_model_version": FAMILIES[lab.family].kohya_base,
        "ss_sd_model_name": lab.name or lab.family,
        "ss_output_name": out.stem,
        "ss_training_comment": f"trigger: {trigger}" if trigger else "trained with labkit",
        "ss_tag_frequency": json.dumps({"labkit": dict(tags)}),
        "ss_dataset_dirs": json.dumps({"labkit": {"n_repeats": 1, "img_count": n_images}}),
        "ss_num_train_images": str(n_images),
        "ss_steps": str(steps),
        "ss_max_train_steps": str(steps),
        "ss_learning_rate": str(lr),
        "ss_unet_lr": str(lr),
        "ss_text_encoder_lr": str(lr if text_encoder else 0),
        "ss_network_train_unet_only": str(not text_encoder),
        "ss_optimizer": "torch.optim.AdamW",
        "ss_lr_scheduler": lr_schedule,
        "ss_max_grad_norm": str(MAX_GRAD_NORM),
        "ss_seed": str(seed),
        "ss_caption_dropout_rate": str(caption_dropout),
        "ss_v_parameterization": str(lab.scheduler_config.get("prediction_type") == "v_prediction"),
    }
    if targets == "all":  # kohya's LoCon: conv layers at the same rank and alpha
        meta["ss_network_args"] = json.dumps({"conv_dim": str(rank), "conv_alpha": str(alpha)})
    if ema:
        meta["ss_ema_decay"] = str(ema)  # labkit's own key: kohya's scripts have no EMA for LoRAs
    v2 = FAMILIES[lab.family].metadata_value("ss_v2")  # kohya's ss_v2, written only where it tells the truth
    if v2 is not None:
        meta["ss_v2"] = v2
    return meta
