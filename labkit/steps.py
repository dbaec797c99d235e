"""The per-step callback of a generation: prompts that change during the run (`[from:to:when]`, `[a|b]`) swapped
in at the right sampler step, and the caller's `on_step(step, total, latents)` (previews, progress, interrupt)."""


def sampler_step(scheduler, index: int) -> int:
    """The sampler step (as A1111 counts them) of the pipeline's loop iteration `index`: second-order samplers
    (Heun, DPM2) run two iterations per step after the first, over timesteps t0, t1, t1, t2, t2, ..."""
    return (index + 1) // 2 if getattr(scheduler, "order", 1) == 2 else index


def step_callbacks(pipe, schedule: list[dict], cfg: bool, on_step=None) -> dict:
    """Pipeline arguments for a per-step callback that swaps in scheduled prompts (`[from:to:when]`, `[a|b]`)
    and calls `on_step(step, total, latents)`, which may return False to stop the run after that step."""
    changes = any(a is not b for a, b in zip(schedule, schedule[1:]))
    if on_step is None and not changes:
        return {}
    pooled = "pooled_prompt_embeds" in schedule[0]
    inputs = ["latents"] + (["prompt_embeds"] + (["add_text_embeds"] if pooled else []) if changes else [])

    def callback(pipe, step, timestep, tensors):
        import torch

        now, nxt = (schedule[min(sampler_step(pipe.scheduler, i), len(schedule) - 1)] for i in (step, step + 1))
        if changes and nxt is not now:
            both = lambda a, b: torch.cat([nxt[a], nxt[b]]) if cfg else nxt[b]  # noqa: E731 (negative first)
            tensors["prompt_embeds"] = both("negative_prompt_embeds", "prompt_embeds")
            if pooled:
                tensors["add_text_embeds"] = both("negative_pooled_prompt_embeds", "pooled_prompt_embeds")
        if on_step is not None and on_step(step, pipe.num_timesteps, tensors["latents"]) is False:
            pipe._interrupt = True
        return tensors

    return {"callback_on_step_end": callback, "callback_on_step_end_tensor_inputs": inputs}
