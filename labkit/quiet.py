"""Keep diffusers' and transformers' routine warnings (float32 casts, optional torchvision) out of notebooks."""

from contextlib import contextmanager


@contextmanager
def quiet_libraries():
    """Within the block, diffusers and transformers log errors only; their previous levels come back after."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    levels = diffusers_logging.get_verbosity(), transformers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    try:
        yield
    finally:
        diffusers_logging.set_verbosity(levels[0])
        transformers_logging.set_verbosity(levels[1])


TORCHSDE_ROUNDING = "Should have ta>=t0"  # torchsde compares float times it rounded itself; harmless


def hide_torchsde_rounding() -> None:
    """Hide torchsde's "Should have ta>=t0" warning, which DPM++ SDE's Brownian tree raises when two of its own
    rounded float times differ by 1e-6: it says nothing about the user's settings. Installed narrowly (this
    message from torchsde only) when labkit resolves such a sampler."""
    import warnings

    warnings.filterwarnings("ignore", message=TORCHSDE_ROUNDING, category=UserWarning, module="torchsde")
