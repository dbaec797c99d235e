"""Write the inputs that labkit and the tools' samplers share (run in labkit's venv).

    PYTHONPATH=. HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 .venv/bin/python parity/export_inputs.py --work /work/parity-work

Committed (small, under tests/fixtures/parity/):
  toy_inputs.npz   cond / uncond embeddings labkit computes (lab.encode_prompt) for PROMPT and an empty negative,
                   labkit's float32 noise for SEED (initial_noise, batch 1), the VAE-scaled init latents of one
                   toy-world picture (lab.encode_image), and that picture (uint8) for reference.
  sd15_inputs.npz  the same noise, for the full-size SD 1.5 layout case; its random cond / uncond (1, 77, 768) are
                   rebuilt from a seed (unets.sd15_conds; sha256 in inputs.json), like its UNet.
  inputs.json      how each array was made (prompt, seeds, labkit commit, weight fingerprints).
Scratch (never committed; render.py reads them from --work):
  toy_unet/        the toy's diffusers UNet (save_pretrained): the tool side wraps this exact network.
  toy.safetensors  the toy as an A1111/ComfyUI single file (lab.save_single_file), for ComfyUI's own loader.
The full-size UNet is not written anywhere: both sides rebuild it from labkit/configs/sd1/unet/config.json with
torch.manual_seed(SD15_UNET_SEED) and check the weight fingerprint stored in inputs.json.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from unets import SD15_COND_SEED, SD15_CONFIG, SD15_UNET_SEED, build_sd15_unet, fingerprint, sd15_conds

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "parity"
PROMPT = "a red circle on a white background"
SEED = 42
SIZE = 64
STEPS = 6
PICTURE = {"world_seed": 0, "world_index": 3}  # labkit.toy.world.example(seed, index): the img2img picture


def toy_inputs(work: Path) -> dict:
    import labkit
    from labkit.noise import initial_noise
    from labkit.toy import world

    lab = labkit.open("toy")
    p = labkit.Params(prompt=PROMPT, negative_prompt="", steps=STEPS, cfg=7.0, seed=SEED, width=SIZE, height=SIZE)
    per_step = lab.encode_prompt(p)
    assert all(d is per_step[0] or all(torch.equal(d[k], per_step[0][k]) for k in d) for d in per_step)
    cond, uncond = per_step[0]["prompt_embeds"], per_step[0]["negative_prompt_embeds"]  # (1, 77, 64) each
    h = SIZE // lab.vae_scale
    shape = (lab.components["vae"].config.latent_channels, h, h)
    noise = initial_noise(SEED, 1, shape, "a1111-cpu")  # (1, 4, 8, 8)
    comfy_noise = initial_noise(SEED, 1, shape, "comfy")
    assert torch.equal(noise, comfy_noise), "batch 1: A1111 (CPU) and ComfyUI draw the same numbers"
    image, caption, _ = world.example(PICTURE["world_seed"], PICTURE["world_index"], size=SIZE)
    init = lab.encode_image(image, p)  # (1, 4, 8, 8), VAE mean times scaling_factor
    unet = lab.components["unet"]
    (work / "toy_unet").mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(str(work / "toy_unet"), safe_serialization=True)
    lab.save_single_file(work / "toy.safetensors", overwrite=True)
    np.savez(FIXTURES / "toy_inputs.npz", cond=cond.float().numpy(), uncond=uncond.float().numpy(),
             noise=noise.numpy(), init_latents=init.float().numpy(), picture=np.asarray(image, np.uint8))
    return {"model": "toy", "family": lab.family, "prompt": PROMPT, "negative_prompt": "", "seed": SEED,
            "noise_mode": "a1111-cpu (equal to 'comfy' for batch 1)", "latent_shape": [1, *shape],
            "picture": {**PICTURE, "caption": caption, "size": SIZE},
            "vae_scaling_factor": lab.components["vae"].config.scaling_factor,
            "unet_fingerprint": fingerprint(unet), "unet_params": sum(t.numel() for t in unet.parameters())}


def sd15_inputs(noise) -> dict:
    unet = build_sd15_unet()
    _, _, digest = sd15_conds()
    np.savez(FIXTURES / "sd15_inputs.npz", noise=noise)
    return {"model": "sd15-random", "config": SD15_CONFIG, "unet_seed": SD15_UNET_SEED, "cond_seed": SD15_COND_SEED,
            "build": "config = UNet2DConditionModel.load_config(config); torch.manual_seed(unet_seed); "
                     "UNet2DConditionModel.from_config(config).eval()",
            "cond_recipe": "g = torch.Generator().manual_seed(cond_seed); cond = randn(1, 77, 768, g); "
                           "uncond = randn(1, 77, 768, g) (parity/unets.py sd15_conds)",
            "cond_sha256": digest,
            "seed": SEED, "latent_shape": [1, 4, SIZE // 8, SIZE // 8],
            "unet_fingerprint": fingerprint(unet), "unet_params": sum(t.numel() for t in unet.parameters())}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/work/parity-work"), help="scratch folder (not committed)")
    ap.add_argument("--skip-sd15", action="store_true", help="leave the slow full-size case as it is")
    args = ap.parse_args()
    FIXTURES.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    def git(*a):
        return subprocess.run(["git", "-C", str(ROOT), *a], check=True, capture_output=True, text=True).stdout.strip()

    commit = git("log", "-1", "--format=%H", "--", "labkit")  # the last commit that changed labkit/
    if git("status", "--porcelain", "--", "labkit"):
        commit += " (with uncommitted changes under labkit/)"
    import diffusers

    info = {"labkit_commit": commit, "python": sys.version.split()[0], "torch": torch.__version__,
            "diffusers": diffusers.__version__, "numpy": np.__version__}
    with torch.no_grad():
        info["toy"] = toy_inputs(args.work)
        old = json.loads((FIXTURES / "inputs.json").read_text()).get("sd15") if (FIXTURES / "inputs.json").exists() else None
        info["sd15"] = old if args.skip_sd15 and old else sd15_inputs(np.load(FIXTURES / "toy_inputs.npz")["noise"])
    (FIXTURES / "inputs.json").write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
