"""What the bad-input cases work on: tiny Labs (random toy-size weights) with fixed limits, and files in one folder
(LoRAs, checkpoints, pickles, pictures with and without a recipe, embeddings, diffusers folders whole and broken).
Built once per session; `state()` is what must not change when a call is refused."""

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import labkit
from tests.helpers.labs import make_lab
from tests.helpers.lora_files import kohya_modules, lora_parts, sd1_sized_lora, write

LIMITS = labkit.Limits(max_seconds=3600, max_memory_gb=16)  # fixed, so messages do not depend on the machine
FAST = {"steps": 2, "sampler": "Euler", "seed": 1}


class Env:
    """Labs and files for the cases: `lab` (toy, SD1 layout), `xl`, `refiner`, `inpaint`; `root` holds the files."""

    def __init__(self, root: Path):
        self.root = root
        self.lab = make_lab("toy", name="toy")
        self.xl = make_lab("toy-xl", name="toy-xl")
        self.refiner = make_lab("toy-xl-refiner", name="toy-xl-refiner")
        self.inpaint = make_lab("toy", in_channels=9, name="toy-inpaint")
        for lab in self.labs:
            lab.limits = LIMITS
            lab.loras.search_paths = [root / "loras"]
            lab.controlnets.search_paths = [root / "controlnets"]
        self.picture = Image.new("RGB", (64, 64), (200, 40, 40))
        self.mask = Image.new("L", (64, 64), 0)
        self.mask.paste(255, (16, 16, 48, 48))
        self._files()
        self.lab.loras.load(self.path("loras/ink.safetensors"))
        self.result = self.lab.txt2img("a red circle", **FAST)
        self.result.save(self.path("picture.png"))
        self.lab.img2img(self.picture, "a red circle", **FAST).save(self.path("img2img.png"))

    @property
    def labs(self):
        return (self.lab, self.xl, self.refiner, self.inpaint)

    def path(self, name: str) -> Path:
        return self.root / name

    def _files(self) -> None:
        (self.root / "loras").mkdir()
        write(self.path("loras/ink.safetensors"), kohya_modules(self.lab, "kohya"), lora_parts)
        sd1_sized_lora(self.path("sd1_lora.safetensors"))
        self._controlnets()
        self._upscalers()
        self.lab.save_single_file(self.path("toy.safetensors"))
        self.path("junk.safetensors").write_bytes(b"hello world, not safetensors")
        torch.save([1, 2, 3], self.path("list.ckpt"))
        torch.save({"epoch": 3, "step": 1000}, self.path("meta.ckpt"))
        Image.new("RGB", (8, 8)).save(self.path("bare.png"))
        from safetensors.torch import save_file

        save_file({"emb_params": torch.randn(1, 64)}, str(self.path("emb.safetensors")))
        save_file({"clip_l": torch.randn(1, 64), "clip_g": torch.randn(1, 96)}, str(self.path("xl_emb.safetensors")))
        self._folders()

    def _controlnets(self) -> None:
        """controlnets/edges (toy, original layout), and beside it files that are not for this Lab."""
        from tests.helpers.controlnets import make_controlnet, save_diffusers_file, save_original

        (self.root / "controlnets").mkdir()
        save_original(make_controlnet(self.lab, seed=3, scale=0.2), self.path("controlnets/edges.safetensors"))
        save_diffusers_file(make_controlnet(self.xl, seed=3), self.path("xl_controlnet.safetensors"))
        torch.save({"control_model.input_hint_block.0.weight": torch.zeros(1)}, self.path("control_sd15.pth"))
        from safetensors.torch import save_file

        save_file({"lora_controlnet": torch.zeros(1), "input_hint_block.0.weight": torch.zeros(16, 3, 3, 3)},
                  str(self.path("control_lora.safetensors")))

    def _upscalers(self) -> None:
        """A pickle that holds an object (unpickling runs its class) and a safetensors file of no known architecture."""
        import argparse

        from safetensors.torch import save_file

        torch.save({"body.0.weight": torch.zeros(4, 3, 3, 3), "extra": argparse.Namespace(x=1)}, self.path("code_upscaler.pth"))
        torch.save({"epoch": 3, "step": torch.tensor(1000)}, self.path("meta.pth"))
        save_file({"mystery.weight": torch.zeros(4, 3, 3, 3)}, str(self.path("mystery_upscaler.safetensors")))

    def _folders(self) -> None:
        from diffusers import AutoencoderKL

        from labkit.quiet import quiet_libraries

        with quiet_libraries():
            self.lab.pipe.save_pretrained(self.path("good"))
            self.lab.pipe.save_pretrained(self.path("pickled"), safe_serialization=False)
            vae = AutoencoderKL(latent_channels=16, block_out_channels=(32,), down_block_types=("DownEncoderBlock2D",),
                                up_block_types=("UpDecoderBlock2D",), norm_num_groups=8)
            vae.save_pretrained(self.path("vae16"))
        from safetensors.torch import save_file

        save_file(vae.state_dict(), str(self.path("vae16.safetensors")))
        for name in ("no_unet", "bad_index", "flux", "no_weights"):
            shutil.copytree(self.path("good"), self.path(name))
        shutil.rmtree(self.path("no_unet/unet"))
        self.path("bad_index/model_index.json").write_text("{not json")
        index = json.loads(self.path("flux/model_index.json").read_text())
        self.path("flux/model_index.json").write_text(json.dumps({**index, "_class_name": "FluxPipeline"}))
        for weights in self.path("no_weights/vae").glob("*.safetensors"):
            weights.unlink()
        (self.root / "plain_folder").mkdir()
        (self.root / "album.png").mkdir()
        shutil.copy(self.path("toy.safetensors"), self.path("plain_folder/model.safetensors"))

    def state(self) -> tuple:
        """Files (name, size) under root and every Lab's LoRAs, limits and a weight checksum."""
        files = tuple(sorted((str(p.relative_to(self.root)), p.stat().st_size)
                             for p in self.root.rglob("*") if p.is_file()))
        labs = tuple((tuple((n, i.weights, i.enabled) for n, i in lab.loras.loaded.items()), lab.limits,
                      sum(float(w.detach().double().sum()) for name in ("unet", "text_encoder", "text_encoder_2")
                          if lab.components.get(name) is not None for w in lab.components[name].parameters()))
                     for lab in self.labs)
        return files, labs


def pixels(image) -> np.ndarray:
    return np.asarray(image)
