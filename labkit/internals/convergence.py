"""Sampler convergence: how far a run with few steps lands from a run with very many.

A deterministic sampler solves an ODE; more steps follow it more closely, so the distance to a many-step
reference shrinks (faster for higher-order solvers). An ancestral sampler adds fresh noise each step: its
runs with different step counts do not approach one answer.
"""


def rms(a, b) -> float:
    """Root-mean-square difference of two latent tensors."""
    return float((a.double() - b.double()).pow(2).mean().sqrt())


def distance_to_reference(lab, prompt: str, sampler: str, steps_list, reference_steps: int = 200, seed: int = 0,
                          schedule: str = "Automatic", reference_sampler: str | None = None, cfg: float = 7.0,
                          negative_prompt: str = "") -> list[float]:
    """RMS distance (latent space) from each run's final latents to a `reference_steps`-step run of
    `reference_sampler` (default: the same sampler), all from the same seed; one value per entry of `steps_list`.

    Runs use the hand-written loop (equal to the pipeline); the noise of ancestral samplers is drawn from a
    generator seeded with `seed`, so results repeat.
    """
    import torch

    from .loop import sample

    def run(name, steps):
        return sample(lab, prompt, negative_prompt, steps=steps, cfg=cfg, seed=seed, sampler=name, schedule=schedule,
                      generator=torch.Generator().manual_seed(seed))

    reference = run(reference_sampler or sampler, reference_steps)  # (1, 4, h, w)
    return [rms(run(sampler, steps), reference) for steps in steps_list]
