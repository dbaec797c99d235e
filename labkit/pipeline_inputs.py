"""The arguments a Lab's run hands its diffusers pipeline: where sampling starts (labkit's seeded noise, started
as the tool would start it), the init picture or latents, the mask."""


def call_kwargs(lab, mode: str, pipe, p, image, mask, crop=None, init_latents=None, fixed_steps=False) -> dict:
    """The mode-specific pipeline arguments: the starting latents the tool would start from (labkit's
    float32 noise, scaled; for img2img added to the picture's latents), init image, mask. `init_latents`: img2img
    from these UNet-space latents (B, C, h, w) instead of the encoded `image` (hires fix's second pass);
    `fixed_steps`: that pass runs exactly p.steps steps (diffusers' own img2img is given a schedule
    int(steps / strength) long, of which it runs about p.steps)."""
    from .limits import first_tensor
    from .noise import draw, generators
    from .sampling.start import first_latents, pipeline_latents

    h, w = p.height // lab.vae_scale, p.width // lab.vae_scale
    latent_shape = (lab.components["vae"].config.latent_channels, h, w)
    dtype, device = first_tensor(lab.components["unet"])  # cheaper than diffusers' walks over every weight
    device = lab.device if lab.offload else device  # offloaded weights wait on the CPU (or "meta")
    gens = generators(p.seed, p.batch_size, p.noise)  # then feeding ancestral / SDE samplers their step noise
    size = {"width": p.width, "height": p.height, "generator": gens}
    init = None
    if mode == "img2img":
        init = init_latents if init_latents is not None else lab.encode_image(image, p, pipe=pipe)
        init = init.to(device).repeat(p.batch_size // len(init), 1, 1, 1)  # (B, 4, h, w)
    if mode == "txt2img" or (mode == "img2img" and "strength" not in pipe_arguments(pipe)):
        noise = draw(gens, p.batch_size, latent_shape).to(device)  # (B, 4, h, w) float32
        start = first_latents(pipe.scheduler, p, noise, None if init is None else init.float())
        return {"latents": pipeline_latents(pipe.scheduler, start).to(dtype), **size}
    if mode == "img2img":  # a sampler labkit cannot plan: diffusers' img2img pipeline noises the picture
        steps = int(p.steps / min(p.strength, 0.999)) if fixed_steps else p.steps
        return {"image": init.to(dtype), "strength": p.strength, "generator": gens, "num_inference_steps": steps}
    if crop is not None:  # "only masked": work on the region around the mask at the full resolution
        image, mask = image.crop(crop), mask.crop(crop)
    call = {"image": image, "mask_image": mask, "strength": p.strength, **size}
    if p.strength < 1.0:
        return call
    noise = draw(gens, p.batch_size, latent_shape).to(device)  # from scratch, started as in txt2img
    return call | {"latents": pipeline_latents(pipe.scheduler, first_latents(pipe.scheduler, p, noise)).to(dtype)}

def pipe_arguments(pipe) -> set:
    """The keyword arguments a pipeline's __call__ takes."""
    import inspect

    return set(inspect.signature(type(pipe).__call__).parameters)
