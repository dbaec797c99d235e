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


@dataclass(frozen=True)
class ModelRecord:
    """What made a Result, beyond its Params: the model (name, family, A1111 hash), where it ran (dtype, device),
    its LoRAs, the configured scheduler ({"class", "config"}) and the refiner's name when one finished it."""

    name: str
    family: str
    hash: str | None = None
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
