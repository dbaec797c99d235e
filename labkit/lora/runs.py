"""LoRAs in a generation: what a Result records of each, the tags a saved prompt needs to bring them back, and
the LoRAs asked for a refiner."""

from pathlib import Path


def lora_record(applied, stage: str):
    """A LoRA that took part in a run (a LoraRecord), as results and saved recipes record it."""
    from ..recipes.records import LoraRecord

    return LoraRecord(name=applied.name, weight=applied.unet_weight, te_weight=applied.te_weight,
                      hash=applied.hash, stage=stage)


def with_lora_tags(prompt: str, applied, tags) -> str:
    """The prompt with `<lora:name:w>` added for LoRAs active through `lab.loras` but not tagged in it, so the
    saved recipe (A1111 keeps LoRAs as prompt tags) brings them back."""
    tagged = {t.name for t in tags}
    extra = [f"<lora:{a.name}:{a.unet_weight:g}>" if a.te_weight == a.unet_weight else
             f"<lora:{a.name}:{a.te_weight:g}:{a.unet_weight:g}>" for a in applied if a.name not in tagged]
    return " ".join([prompt, *extra]) if extra else prompt


def load_refiner_loras(refiner, requests) -> None:
    """Load the LoRAs asked for the refiner stage ([(path or name, weight)]) unless already loaded."""
    for path, weight in requests:
        name = Path(path).stem
        if name not in refiner.loras.loaded:
            refiner.loras.load(path, weight=weight)
