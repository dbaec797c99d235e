"""Tiny real Labs: labkit's toy configs with seeded random weights (no trained weights, no downloads)."""


def make_lab(family: str, seed: int = 0, in_channels=None, name=None):
    from labkit.lab import Lab
    from labkit.toy.build import fresh_components

    variant = "inpaint" if in_channels == 9 else None
    return Lab(fresh_components(family, seed=seed, in_channels=in_channels), family, variant=variant,
               name=name or f"random-{family}")
