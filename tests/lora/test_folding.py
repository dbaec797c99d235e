"""LoRAs folded without copies: originals are read back from the model's file, bit for bit, and copies are kept
only where the file cannot give the weight back (labkit.lora.folding, labkit.originals)."""

import pytest
import torch

import labkit
from labkit.errors import UnsupportedFile
from tests.helpers.lora_files import kohya_modules, lora_parts, write

COMPONENTS = ("unet", "text_encoder", "text_encoder_2")


def weights(lab) -> dict:
    return {(c, k): v.clone() for c in COMPONENTS if lab.components.get(c) is not None
            for k, v in lab.components[c].state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def touched(before: dict, lab) -> int:
    now = weights(lab)
    return sum(not torch.equal(before[k], now[k]) for k in before)


@pytest.mark.parametrize("model, dtype", [("toy", "float32"), ("toy-xl", "float32"), ("toy-xl", "bfloat16")])
def test_folding_keeps_no_copies_and_gives_the_file_weights_back_bit_for_bit(model, dtype, tmp_path):
    """Every weight a LoRA changes (UNet, CLIP-L, OpenCLIP-G's q/k/v rows of in_proj) is read back from the file,
    cast as the model was opened; disabling the LoRA restores every bit."""
    lab = labkit.open(model, dtype=dtype)
    path = write(tmp_path / "l.safetensors", kohya_modules(lab, "lora"), lora_parts)
    before = weights(lab)
    lab.loras.load(path)
    lab.loras.apply()
    changed = touched(before, lab)
    assert changed > 0 and lab.loras.from_file == changed and lab.loras.backups == 0
    lab.loras.set_weight(path.stem, 0.5)
    lab.loras.apply()  # refolded from the file's originals
    lab.loras.disable(path.stem)
    lab.loras.apply()
    assert same(before, weights(lab)) and lab.loras.from_file == 0


def test_a_saved_and_reopened_single_file_gives_its_weights_back_too(tmp_path):
    """A single file written by labkit (SDXL layout: text projection transposed, q/k/v joined) serves as the
    originals of the Lab opened from it."""
    saved = labkit.open("toy-xl").save_single_file(tmp_path / "mine.safetensors")
    lab = labkit.open(saved)
    path = write(tmp_path / "l.safetensors", kohya_modules(lab, "lora"), lora_parts)
    before = weights(lab)
    lab.loras.load(path)
    lab.loras.apply()
    assert lab.loras.backups == 0 and lab.loras.from_file == touched(before, lab) > 0
    lab.loras.unfuse()
    assert same(before, weights(lab))


def test_weights_changed_since_opening_are_copied_and_given_back_as_they_were(tmp_path):
    """The file no longer holds what the model holds: the changed weight keeps a copy (on the CPU) and comes back
    as it was before the LoRA, not as the file has it."""
    lab = labkit.open("toy")
    path = write(tmp_path / "l.safetensors", kohya_modules(lab, "lora"), lora_parts)
    q = lab.components["text_encoder"].state_dict()[
        next(k for k in lab.components["text_encoder"].state_dict() if k.endswith("layers.0.self_attn.q_proj.weight"))]
    with torch.no_grad():
        q.mul_(1.5)  # a user's own edit
    before = weights(lab)
    lab.loras.load(path)
    lab.loras.apply()
    assert lab.loras.backups == 1 and lab.loras.from_file == touched(before, lab) - 1
    lab.loras.unfuse()
    assert same(before, weights(lab))


def test_a_folder_model_keeps_copies_on_the_cpu(tmp_path):
    """Without a single file to read back from (a diffusers folder here), each changed weight keeps a copy, on the
    manager's backup_device: the CPU by default, as A1111 keeps them, so a GPU keeps its memory."""
    lab = labkit.open("toy")
    lab.weight_files = None  # what a folder-opened Lab has
    path = write(tmp_path / "l.safetensors", kohya_modules(lab, "lora"), lora_parts)
    before = weights(lab)
    lab.loras.load(path)
    lab.loras.apply()
    assert lab.loras.from_file == 0 and lab.loras.backups == touched(before, lab) > 0
    assert {t.device.type for t in lab.loras._weights.backups.values()} == {"cpu"}
    lab.loras.unfuse()
    assert same(before, weights(lab)) and lab.loras.backups == 0


def test_a_file_replaced_while_a_lora_is_folded_is_an_error_that_says_to_reopen(tmp_path):
    saved = labkit.open("toy").save_single_file(tmp_path / "mine.safetensors")
    lab = labkit.open(saved)
    path = write(tmp_path / "l.safetensors", kohya_modules(lab, "lora"), lora_parts)
    lab.loras.load(path)
    lab.loras.apply()
    saved.unlink()
    saved.write_bytes(b"not the model any more")
    with pytest.raises(UnsupportedFile, match="Open the model again"):
        lab.loras.unfuse()
