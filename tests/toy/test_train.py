"""labkit.toy.train: every stage learns, writes parts that labkit.open assembles, encodes text exactly as the
diffusers pipelines do at inference, and reproduces its weights from its seed."""

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import labkit
from labkit import export
from labkit.toy import registry, world
from labkit.toy import train as T
from labkit.toy.train import __main__ as cli
from labkit.toy.train import inpaint, refiner, sd, xl

# 40 steps on 4 images with batch 4: the same images every step, so the loss must fall (lr x3 to make it decisive)
TINY = dict(steps=40, batch=4, pool=4, scale_images=4, eval_images=4)
PROMPT = "a small red circle in the top left of a white background"
MEMBERS = ("toy", "toy-xl", "toy-xl-refiner", "toy-inpaint")
TOY_FAMILIES = ("toy", "toy-xl", "toy-xl-refiner")
# the last losses' share of the first ones that each stage must reach; the upscaler starts as nearest-neighbour
# upscaling (Compact adds its output to that), so its first loss is already low and 40 steps of random patches lower
# it only a little: tests/upscalers checks the shipped one beats Lanczos by 2 dB
BOUND = {"toy-controlnet": 0.95, "toy-upscaler": 0.99}
WRITERS = {  # part prefix -> (component, labkit.export writer giving its LDM keys under that prefix)
    "first_stage_model.": ("vae", lambda vae, prefix: export.vae_to_ldm(vae)),
    "model.diffusion_model.": ("unet", lambda unet, prefix: export.unet_to_ldm(unet)),
    "cond_stage_model.transformer.": ("text_encoder", export.clip_to_ldm),
    "conditioner.embedders.0.transformer.": ("text_encoder", export.clip_to_ldm),
    "conditioner.embedders.1.model.": ("text_encoder_2", export.open_clip_to_ldm),
    "conditioner.embedders.0.model.": ("text_encoder_2", export.open_clip_to_ldm),
}


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models train faster on one thread than on cores shared with other processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_thread):
    """Every stage trained in order into a temporary weights folder: (folder, {stage: losses})."""
    out = tmp_path_factory.mktemp("weights")
    run = T.Run(out, progress=False)
    for stage in T.STAGES:
        T.train(stage, run, **TINY, lr=3 * T.RECIPES[stage].lr)
    losses = {}
    for stage in T.STAGES:
        with open(out / "logs" / f"{stage}.csv") as f:
            losses[stage] = [float(loss) for _, loss in list(csv.reader(f))[1:]]
    return out, losses


@pytest.fixture
def shipped(trained, monkeypatch):
    """labkit.open reads the temporary folder as the embedded models' weights."""
    out, _ = trained
    monkeypatch.setattr(registry, "WEIGHTS", out)
    monkeypatch.setattr(registry, "MANIFEST", out / "manifest.json")
    return out


@pytest.mark.parametrize("stage", [s for s in T.STAGES if s != "vae-decoder"])  # its own test below
def test_every_stage_overfits_a_fixed_batch(trained, stage):
    _, losses = trained
    first, last = np.mean(losses[stage][:5]), np.mean(losses[stage][-5:])
    assert len(losses[stage]) == TINY["steps"]
    assert np.isfinite(losses[stage]).all()
    # a ControlNet only adds residuals to a frozen UNet (here one trained 40 steps): it lowers the loss less
    assert last < BOUND.get(stage, 0.7) * first, f"{stage}: loss {first:.3f} -> {last:.3f}"


def test_manifest_lists_complete_members_with_independent_hashes(trained):
    out, _ = trained
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest) == sorted(MEMBERS)
    assert manifest["toy"]["parts"] == [["vae.safetensors", "first_stage_model."],
                                        ["clip_l.safetensors", "cond_stage_model.transformer."],
                                        ["unet_toy.safetensors", "model.diffusion_model."]]
    assert manifest["toy-xl-refiner"]["parts"][1] == ["clip_g.safetensors", "conditioner.embedders.0.model."]
    assert (manifest["toy-inpaint"]["family"], manifest["toy-inpaint"]["variant"]) == ("toy", "inpaint")
    for member, entry in manifest.items():
        digest = hashlib.sha256(b"".join((out / f).read_bytes() for f, _ in entry["parts"])).hexdigest()
        assert entry["hash"] == digest[:10]
        assert entry["steps"] == TINY["steps"] and entry["batch"] == TINY["batch"]
        assert entry["seed"] == T.RECIPES[member].seed and entry["torch"] == torch.__version__
        assert entry["loss"] > 0 and entry["minutes"] >= 0 and entry["lr"] == 3 * T.RECIPES[member].lr
        assert (out / "logs" / f"{member}.png").read_bytes().startswith(b"\x89PNG")


def test_parts_are_float16_without_their_prefix(trained):
    from safetensors.torch import load_file

    out, _ = trained
    for file, prefix in T.MEMBERS["toy-xl"][2]:
        tensors = load_file(str(out / file))
        assert all(t.dtype == torch.float16 for t in tensors.values())
        assert not any(k.startswith(prefix) for k in tensors)


def test_vae_record_holds_its_scaling_factor_and_psnr(trained, one_thread):
    out, _ = trained
    vae_record = T.read_records(out)["vae"]
    images, _ = T.Run(out, progress=False).pool(TINY["pool"], T.TRAIN_WORLD, T.VAE_STYLES)
    means = T.encode_images(T.load_vae_part(out, "cpu"), images, 1.0, "cpu")  # (4, 4, 8, 8)
    assert vae_record["scaling_factor"] == round(1 / means.std().item(), 4)
    assert 5 < vae_record["psnr"] < 60


@pytest.mark.parametrize("member", MEMBERS)
def test_members_open_with_the_trained_weights_and_generate(shipped, member):
    lab = labkit.open(member)
    family, variant, parts = T.MEMBERS[member]
    assert (lab.family, lab.variant, lab.model_hash) == (family, variant, T.member_hash(shipped, member))
    for file, prefix in parts:  # every shipped tensor arrived, unchanged, in the opened model
        component, writer = WRITERS[prefix]
        expected, got = T.read_part(shipped, file, prefix), writer(lab.components[component], prefix)
        assert expected.keys() == got.keys()
        assert all(torch.equal(expected[k], got[k]) for k in expected)
    if member == "toy-xl-refiner":
        start = Image.fromarray(np.full((64, 64, 3), 128, np.uint8))
        image = lab.img2img(start, PROMPT, strength=0.5, steps=4, seed=1).image
    else:
        image = lab.txt2img(PROMPT, steps=2, seed=1).image
    assert image.size == (64, 64)


STAGE_MODULES = {"toy": sd, "toy-xl": xl, "toy-xl-refiner": refiner, "toy-inpaint": inpaint}


def spy_on_conditioning(monkeypatch, stage):
    """Record what each training step of `stage` hands the UNet besides the noisy latents."""
    seen, original = [], T.diffusion_loss

    def spy(unet, scheduler, latents, gen, t_max, extra=None, **conditioning):
        seen.append({"extra": extra, **conditioning, **conditioning.get("added_cond_kwargs", {})})
        return original(unet, scheduler, latents, gen, t_max, extra, **conditioning)

    monkeypatch.setattr(STAGE_MODULES[stage], "diffusion_loss", spy)
    return seen


def train_one_step(trained, folder, stage, **overrides):
    """One step of `stage` in `folder`, on the parts the earlier stages wrote in the trained folder."""
    out, _ = trained
    folder.mkdir()
    for name in ("vae.safetensors", "clip_l.safetensors", "clip_g.safetensors", "unet_toy.safetensors", T.RECORDS):
        shutil.copy(out / name, folder / name)
    T.train(stage, T.Run(folder, progress=False), steps=1, batch=4, pool=4, **overrides)
    return folder


def test_sd_dropped_captions_are_the_empty_prompt(trained, tmp_path, monkeypatch, one_thread):
    from labkit.toy.build import fresh_components

    seen = spy_on_conditioning(monkeypatch, "toy")
    train_one_step(trained, tmp_path / "toy", "toy", dropout=1.0)
    parts = fresh_components("toy", T.RECIPES["toy"].seed)  # the text encoder as the step saw it
    with torch.no_grad():
        empty = T.encode_sd(parts["text_encoder"], T.token_ids(parts["tokenizer"], [""] * 4))  # (4, 77, 64)
    assert torch.equal(seen[0]["encoder_hidden_states"].detach(), empty)


@pytest.mark.parametrize("null_text", [0.0, 1.0])
def test_xl_dropped_captions_are_zeros_or_the_empty_prompt(trained, tmp_path, monkeypatch, one_thread, null_text):
    seen = spy_on_conditioning(monkeypatch, "toy-xl")
    folder = train_one_step(trained, tmp_path / "xl", "toy-xl", dropout=1.0, null_text=null_text)
    text, pooled = seen[0]["encoder_hidden_states"].detach(), seen[0]["text_embeds"]  # (4, 77, 160), (4, 96)
    assert torch.equal(seen[0]["time_ids"], T.xl_time_ids(4))
    if null_text == 0.0:  # what the SDXL pipeline feeds for an empty negative prompt (force_zeros_for_empty_prompt)
        assert not text.any() and not pooled.any()
        return
    clip_l = T.load_text_encoder_part(folder, "toy", "text_encoder", "clip_l.safetensors", T.CLIP_L_SD1, "cpu")
    with torch.no_grad():
        empty_l, _ = T.encode_xl([clip_l], [T.token_ids(labkit.tokenizer("toy-xl")[0], [""] * 4)])  # (4, 77, 64)
    assert torch.equal(text[..., :64], empty_l) and pooled.abs().sum() > 0


def test_refiner_dropped_captions_are_the_empty_prompt_at_aesthetic_2_5(trained, tmp_path, monkeypatch, one_thread):
    seen = spy_on_conditioning(monkeypatch, "toy-xl-refiner")
    folder = train_one_step(trained, tmp_path / "refiner", "toy-xl-refiner", dropout=1.0)
    clip_g = T.load_text_encoder_part(folder, "toy-xl", "text_encoder_2", "clip_g.safetensors", T.CLIP_G_XL, "cpu")
    with torch.no_grad():
        empty, empty_pooled = T.encode_xl([clip_g], [T.token_ids(labkit.tokenizer("toy-xl-refiner"), [""] * 4)])
    assert torch.equal(seen[0]["encoder_hidden_states"], empty) and torch.equal(seen[0]["text_embeds"], empty_pooled)
    assert torch.equal(seen[0]["time_ids"], T.refiner_time_ids(torch.zeros(4, dtype=torch.bool)))
    assert (seen[0]["time_ids"][:, 4] == 2.5).all()


def test_inpaint_steps_feed_mask_and_masked_latents(trained, tmp_path, monkeypatch, one_thread):
    seen = spy_on_conditioning(monkeypatch, "toy-inpaint")
    train_one_step(trained, tmp_path / "inpaint", "toy-inpaint")
    extra = seen[0]["extra"]  # (4, 5, 8, 8)
    assert extra.shape == (4, 5, 8, 8) and set(extra[:, 0].unique().tolist()) <= {0.0, 1.0}


def test_sd_encoding_equals_the_pipeline(sd_lab):
    te, tok = sd_lab.components["text_encoder"], sd_lab.components["tokenizer"]
    with torch.no_grad():
        positive, negative = sd_lab.pipe.encode_prompt(PROMPT, "cpu", 1, True, negative_prompt="")
        assert torch.equal(T.encode_sd(te, T.token_ids(tok, [PROMPT])), positive)
        assert torch.equal(T.encode_sd(te, T.Tokens(tok)([PROMPT, ""]))[1:], negative)  # the dropped caption


def test_xl_encoding_pooled_and_time_ids_equal_the_pipeline(xl_lab):
    c, pipe = xl_lab.components, xl_lab.pipe
    encoders, tokenizers = [c["text_encoder"], c["text_encoder_2"]], [c["tokenizer"], c["tokenizer_2"]]
    with torch.no_grad():
        embeds, negative, pooled, negative_pooled = pipe.encode_prompt(PROMPT, device="cpu", num_images_per_prompt=1,
                                                                       do_classifier_free_guidance=True)
        mine, mine_pooled = T.encode_xl(encoders, [T.token_ids(t, [PROMPT]) for t in tokenizers])
        assert mine.shape == (1, 77, 160) and torch.equal(mine, embeds) and torch.equal(mine_pooled, pooled)
        assert not negative.any() and not negative_pooled.any()  # dropped captions train on zeros...
        _, negative, _, negative_pooled = pipe.encode_prompt(PROMPT, device="cpu", num_images_per_prompt=1,
                                                             do_classifier_free_guidance=True, negative_prompt="")
        empty, empty_pooled = T.encode_xl(encoders, [T.token_ids(t, [""]) for t in tokenizers])
        assert torch.equal(empty, negative) and torch.equal(empty_pooled, negative_pooled)  # ...and on ""
    time_ids = pipe._get_add_time_ids((64, 64), (0, 0), (64, 64), torch.float32, text_encoder_projection_dim=96)
    assert torch.equal(T.xl_time_ids(2), time_ids.repeat(2, 1))


def test_refiner_encoding_and_aesthetic_time_ids_equal_the_pipeline(refiner_lab):
    c, pipe = refiner_lab.components, refiner_lab.pipeline("img2img")
    encoder, tok = c["text_encoder_2"], c["tokenizer_2"]
    with torch.no_grad():
        embeds, negative, pooled, negative_pooled = pipe.encode_prompt(PROMPT, device="cpu", num_images_per_prompt=1,
                                                                       do_classifier_free_guidance=True,
                                                                       negative_prompt="")
        mine, mine_pooled = T.encode_xl([encoder], [T.token_ids(tok, [PROMPT])])
        empty, empty_pooled = T.encode_xl([encoder], [T.token_ids(tok, [""])])  # the dropped caption
    assert mine.shape == (1, 77, 96)
    assert torch.equal(mine, embeds) and torch.equal(mine_pooled, pooled)
    assert torch.equal(empty, negative) and torch.equal(empty_pooled, negative_pooled)
    size = (64, 64)
    positive_ids, negative_ids = pipe._get_add_time_ids(size, (0, 0), size, 6.0, 2.5, size, (0, 0), size,
                                                        torch.float32, text_encoder_projection_dim=96)
    assert torch.equal(T.refiner_time_ids(torch.tensor([True, False])), torch.cat([positive_ids, negative_ids]))


def test_inpaint_channels_equal_what_the_pipeline_feeds_its_unet(inpaint_lab):
    pipe = inpaint_lab.pipeline("inpaint")
    scene = world.sample_scene(np.random.default_rng(3), allow_two=False)
    image, mask = scene.render(64), world.inpaint_mask(scene)
    seen = {}
    hook = pipe.unet.register_forward_pre_hook(lambda module, args: seen.update(input=args[0]))
    try:
        with torch.no_grad():
            pipe(PROMPT, image=image, mask_image=mask, latents=torch.randn(1, 4, 8, 8), strength=1.0,
                 num_inference_steps=1, guidance_scale=1.0, generator=torch.Generator().manual_seed(5),
                 output_type="latent")
    finally:
        hook.remove()
    pixels = torch.from_numpy(world.to_tensor_batch([image]))  # (1, 3, 64, 64)
    masks = torch.from_numpy(np.asarray(mask) > 127).float()[None, None]  # (1, 1, 64, 64)
    extra = T.inpaint_extra(pipe.vae, pixels, masks, pipe.vae.config.scaling_factor,
                            torch.Generator().manual_seed(5))  # (1, 5, 8, 8)
    assert seen["input"].shape == (1, 9, 8, 8)
    assert torch.equal(seen["input"][:, 4:5], extra[:, :1])  # the mask right after the 4 noisy channels
    torch.testing.assert_close(seen["input"][:, 5:], extra[:, 1:], atol=1e-5, rtol=1e-5)


def test_inpaint_unet_starts_as_the_base_unet(sd_lab):
    from labkit.toy.build import fresh_components

    base = sd_lab.components["unet"]
    unet = T.inpaint_unet(fresh_components("toy", seed=1, in_channels=9)["unet"], base)
    x, extra, text = torch.randn(2, 4, 8, 8), torch.randn(2, 5, 8, 8), torch.randn(2, 77, 64)
    t = torch.tensor([10, 900])
    with torch.no_grad():
        torch.testing.assert_close(unet(torch.cat([x, extra], 1), t, text).sample, base(x, t, text).sample)
    assert not unet.conv_in.weight[:, 4:].any()


def test_masks_mix_full_object_and_rectangle():
    scenes = [world.example(0, i)[2] for i in range(64)]
    objects = torch.stack([torch.stack([torch.from_numpy(np.asarray(world.inpaint_mask(s, 64, 0)) > 127)] * 2)
                           for s in scenes])  # (64, 2, 64, 64)
    masks = T.inpaint_masks(scenes, objects, torch.Generator().manual_seed(0))
    assert masks.shape == (64, 1, 64, 64) and set(masks.unique().tolist()) <= {0.0, 1.0}
    full = masks.flatten(1).all(1)
    is_object = torch.tensor([torch.equal(m[0], o[0].float()) for m, o in zip(masks, objects)])
    assert 5 < full.sum() < 30 and 10 < (is_object & ~full).sum() < 45 and (~full & ~is_object).sum() > 5


def test_scheduler_matches_the_families_schedule(sd_lab, xl_lab):
    for lab, family in ((sd_lab, "toy"), (xl_lab, "toy-xl")):
        torch.testing.assert_close(T.noise_scheduler(family).alphas_cumprod, lab.pipe.scheduler.alphas_cumprod)


def test_same_seed_same_weights_other_seed_other_weights(trained, tmp_path, one_thread):
    out, _ = trained

    def retrain(folder, seed):
        folder.mkdir()
        for name in ("vae.safetensors", T.RECORDS):
            shutil.copy(out / name, folder / name)
        T.train("toy", T.Run(folder, progress=False), steps=4, batch=4, pool=4, seed=seed)
        return [(folder / f).read_bytes() for f in ("clip_l.safetensors", "unet_toy.safetensors")]

    first, again, other = retrain(tmp_path / "a", 7), retrain(tmp_path / "b", 7), retrain(tmp_path / "c", 8)
    assert first == again
    assert first[0] != other[0] and first[1] != other[1]


def test_the_controlnet_stage_is_deterministic_from_its_seed(trained, tmp_path, one_thread):
    out, _ = trained

    def retrain(folder, seed):
        shutil.copytree(out, folder)
        T.train("toy-controlnet", T.Run(folder, progress=False), steps=3, batch=4, pool=4, seed=seed)
        return (folder / "toy-controlnet.safetensors").read_bytes()

    first, again, other = retrain(tmp_path / "a", 7), retrain(tmp_path / "b", 7), retrain(tmp_path / "c", 8)
    assert first == again and first != other
    assert labkit.inspect(tmp_path / "a" / "toy-controlnet.safetensors").kind == "controlnet"


def test_the_upscaler_stage_is_deterministic_from_its_seed(trained, tmp_path, one_thread):
    out, _ = trained

    def retrain(folder, seed):
        shutil.copytree(out, folder)
        record = T.train("toy-upscaler", T.Run(folder, progress=False), steps=3, batch=2, pool=3, seed=seed)
        return (folder / "toy-upscaler.safetensors").read_bytes(), record

    (first, record), (again, _), (other, _) = (retrain(tmp_path / n, s) for n, s in (("a", 7), ("b", 7), ("c", 8)))
    assert first == again and first != other
    assert {"psnr", "psnr_lanczos", "psnr_vae", "psnr_vae_lanczos"} <= set(record)
    info = labkit.inspect(tmp_path / "a" / "toy-upscaler.safetensors")
    assert (info.kind, info.architecture, info.scale) == ("upscaler", "RealESRGAN Compact", 2)


def test_members_trained_on_replaced_parts_leave_the_manifest(trained, tmp_path, one_thread):
    out, _ = trained
    folder = tmp_path / "weights"
    shutil.copytree(out, folder)
    T.train("toy", T.Run(folder, progress=False), steps=2, batch=4, pool=4, seed=9)  # a new clip_l
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sorted(manifest) == ["toy", "toy-xl-refiner"]  # toy-xl and toy-inpaint were built on the old clip_l
    assert manifest["toy"]["seed"] == 9


def decoder_loss(folder, images, samples=32):
    """The vae-decoder stage's objective (L1 + 0.1 MSE of decoded posterior samples), averaged over many samples:
    a single step's loss is too noisy to compare when the encoder is barely trained."""
    import torch.nn.functional as F

    vae, g = T.load_vae_part(folder, "cpu"), torch.Generator().manual_seed(0)
    x = T.to_unit(images).repeat(samples, 1, 1, 1)  # (4 * samples, 3, 64, 64)
    with torch.no_grad():
        recon = vae.decode(vae.encode(x).latent_dist.sample(generator=g)).sample
    return float(F.l1_loss(recon, x) + 0.1 * F.mse_loss(recon, x))


def test_a_retrained_decoder_keeps_the_encoder_and_every_member(trained, tmp_path, one_thread):
    from safetensors.torch import load_file

    out, _ = trained
    folder = tmp_path / "weights"
    shutil.copytree(out, folder)
    run = T.Run(folder, progress=False)
    images, _ = run.pool(4, T.TRAIN_WORLD, T.VAE_STYLES)
    before, loss_before = load_file(str(folder / "vae.safetensors")), decoder_loss(folder, images)
    record = T.train("vae-decoder", run, steps=40, batch=4, pool=4, eval_images=4, seed=9, lr=1e-3)
    after = load_file(str(folder / "vae.safetensors"))
    assert decoder_loss(folder, images) < 0.95 * loss_before  # measured: 0.123 -> 0.110
    assert before.keys() == after.keys() and 5 < record["psnr"] < 60
    for key in before:  # the encoder half is bit for bit the same; the decoder moved
        assert torch.equal(before[key], after[key]) == key.startswith(T.ENCODER_KEYS), key
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sorted(manifest) == sorted(MEMBERS)  # UNets read only latents: none is stale
    old = json.loads((out / "manifest.json").read_text())
    assert all(manifest[m]["hash"] != old[m]["hash"] for m in MEMBERS)  # the members ship the new decoder
    T.train("vae", T.Run(folder, progress=False), **TINY, seed=9)  # a new encoder makes every UNet stale
    assert json.loads((folder / "manifest.json").read_text()) == {}


def configs_written(root):
    """{path relative to root: bytes} of every file make_configs wrote under `root`."""
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_vae_record_sets_the_toy_configs_scaling_factor_and_nothing_else(tmp_path):
    from labkit.configs import make_configs

    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / T.RECORDS).write_text(json.dumps({"vae": {"scaling_factor": 0.4321}}))
    make_configs.write_configs(tmp_path / "configs", weights)
    written, toy_vaes = configs_written(tmp_path / "configs"), {Path(f, "vae", "config.json") for f in TOY_FAMILIES}
    for path, data in written.items():  # every file is a shipped one; only the toy VAEs' scaling factor moved
        shipped = (make_configs.ROOT / path).read_bytes()
        if path in toy_vaes:
            assert json.loads(data) == {**json.loads(shipped), "scaling_factor": 0.4321}
        else:
            assert data == shipped, path
    assert set(written) == {p.relative_to(make_configs.ROOT) for p in make_configs.ROOT.rglob("*.json")}  # all
    assert json.loads(written[Path("sd1/vae/config.json")])["scaling_factor"] == 0.18215
    shipped_factor = T.read_records(registry.WEIGHTS)["vae"]["scaling_factor"]  # and the shipped configs hold
    for family in TOY_FAMILIES:  # the shipped record's factor
        config = json.loads((make_configs.ROOT / family / "vae" / "config.json").read_text())
        assert config["scaling_factor"] == shipped_factor == make_configs.toy_scaling_factor()


def test_training_the_shipped_vae_rewrites_the_configs_from_its_record(tmp_path, monkeypatch, one_thread):
    from labkit.configs import make_configs

    calls, write = [], make_configs.write_configs
    monkeypatch.setattr(make_configs, "write_configs",  # into a temporary folder: the shipped one stays as it is
                        lambda weights: calls.append(weights) or write(tmp_path / "configs", weights))
    T.train("vae", T.Run(tmp_path / "elsewhere", progress=False), steps=1, batch=2, pool=2, scale_images=2,
            eval_images=2)
    assert calls == []  # a run into any other folder leaves the configs alone
    folder = tmp_path / "shipped"
    record = T.train("vae", T.Run(folder, progress=False, update_configs=True), steps=1, batch=2, pool=2,
                     scale_images=2, eval_images=2)
    assert calls == [folder]
    for family in TOY_FAMILIES:
        config = json.loads((tmp_path / "configs" / family / "vae" / "config.json").read_text())
        assert config["scaling_factor"] == record["scaling_factor"] == T.read_records(folder)["vae"]["scaling_factor"]


def test_cli_trains_the_stages_in_order_with_overrides(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(cli, "train", lambda stage, run, **kw: calls.append((stage, run.out, kw)) or {})
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    cli.main(["all", "--steps", "5", "--batch", "2", "--out", str(tmp_path), "--quiet"])
    assert [c[0] for c in calls] == list(T.STAGES)
    assert all(out == tmp_path and kw == {"steps": 5, "batch": 2} for _, out, kw in calls)
    with pytest.raises(SystemExit):
        cli.main(["toy-xxl"])


@pytest.mark.parametrize("stage", ["vae-decoder", "toy"])
def test_a_stage_without_its_vae_says_what_to_run(tmp_path, stage):
    with pytest.raises(FileNotFoundError, match="train vae"):
        T.train(stage, T.Run(tmp_path, progress=False), steps=1, batch=2, pool=2)
