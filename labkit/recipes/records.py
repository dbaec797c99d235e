"""What ran, beside the Params: the model record a Result carries and a recipe writes (labkit JSON "model")."""

from dataclasses import dataclass


@dataclass(frozen=True)
class LoraRecord:
    """A LoRA that took part in a run: its UNet and text-encoder weights, A1111's hash (AutoV3) and the stage it
    touched ("base" or "refiner")."""

    name: str
    weight: float
    te_weight: float
    hash: str | None
    stage: str

    def to_dict(self) -> dict:
        return {"name": self.name, "weight": self.weight, "te_weight": self.te_weight, "hash": self.hash,
                "stage": self.stage}


class OnFirstRead:
    """A dataclass field that may be given as a zero-argument function: called the first time the field is read,
    and its value kept. A model's file hash (seconds for a 7 GB SDXL file) is then computed when a recipe needs it
    (saving a picture, reproducing one), not while a generation is timed."""

    def __set_name__(self, owner, name):
        self.slot = "_" + name

    def __get__(self, record, owner=None):
        if record is None:
            return None  # the field's default
        value = record.__dict__.get(self.slot)
        if callable(value):
            value = value()
            record.__dict__[self.slot] = value
        return value

    def __set__(self, record, value):
        if self.slot in record.__dict__:
            raise AttributeError("a record's fields are set once")
        record.__dict__[self.slot] = value


@dataclass(frozen=True)
class ModelRecord:
    """What made a Result, beyond its Params: the model (name, family, A1111 hash), where it ran (dtype, device),
    its LoRAs, the configured scheduler ({"class", "config"}) and the refiner's name when one finished it."""

    name: str
    family: str
    hash: str | None = OnFirstRead()  # or a function giving it, called when first read
    dtype: str = "float32"
    device: str = "cpu"
    loras: tuple[LoraRecord, ...] = ()
    scheduler: dict | None = None
    refiner: str | None = None

    def to_dict(self) -> dict:
        """The record as labkit's JSON recipe keeps it under "model" (no "refiner" key without a refiner)."""
        record = {"name": self.name, "family": self.family, "hash": self.hash, "dtype": self.dtype,
                  "device": self.device, "loras": [lora.to_dict() for lora in self.loras],
                  "scheduler": self.scheduler}
        return record | ({"refiner": self.refiner} if self.refiner is not None else {})
