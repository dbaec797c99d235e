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
