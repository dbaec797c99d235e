"""labkit's errors: each says what went wrong and how to fix it."""


class LabkitError(Exception):
    """Base class of every error labkit raises on purpose."""


class UnsafeFile(LabkitError):
    """A pickled checkpoint (.ckpt/.pt/.bin) that could run code when loaded."""


class UnsupportedFile(LabkitError):
    """A file or model name labkit cannot open (missing, corrupt, unknown family)."""


class LoraMismatch(LabkitError):
    """A LoRA that does not fit the loaded model's family, or that matched too little of it."""


class BadInput(LabkitError, ValueError):
    """A setting outside what the pipeline accepts (size, strength, sampler, steps...)."""


class TooLarge(BadInput):
    """A run whose estimated time or memory is over the Lab's limits (`lab.limits`), or a grid too large to start
    unasked; the message gives the estimate and how to raise the limit."""
