"""labkit.lora: LoRA files of every format written for tiny real components, folded into the weights and checked
against hand computations, PEFT's own merge, and the pictures they make."""

import copy
import json
import subprocess
import sys
from collections import namedtuple

import numpy as np
import pytest
import torch
from tests.helpers.labs import make_lab
from safetensors.torch import load_file, save_file

from labkit import BadInput, LoraMismatch, UnsupportedFile
from labkit.export import unet_to_ldm
from labkit.hashes import autov3
from labkit.lora import LoraManager, train
from tests.helpers.lora_files import (ALPHA, RANK, TEXT, gen, kohya_modules, kohya_text, kohya_unet_sgm, lora_parts,
                                      rand, sd1_sized_lora, write)

FAST = {"steps": 3, "sampler": "Euler", "seed": 5}
PROMPT = "a red circle on a blue background"
Tag = namedtuple("Tag", "name te_weight unet_weight")  # what the prompt parser hands to for_call


# ---- fixtures and helpers ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sd():
    return make_lab("toy", seed=3)


@pytest.fixture(scope="module")
def xl():
    return make_lab("toy-xl", seed=3)


@pytest.fixture(scope="module")
def refiner():
    return make_lab("toy-xl-refiner", seed=3)


@pytest.fixture
def manager():
    """A LoraManager factory; every manager made gives its weights back when the test ends."""
    made = []

    def make(lab):
        made.append(LoraManager(lab, search_paths=[]))
        return made[-1]

    yield make
    for m in made:
        m.unfuse()


def picture(lab, m=None, prompt=PROMPT):
    if m is not None:
        m.apply()
    return np.asarray(lab.txt2img(prompt, **FAST).image, dtype=np.int16)


def weights(lab) -> dict:
    return {f"{c}.{k}": v.detach().clone() for c in ("unet", "text_encoder", "text_encoder_2")
            if lab.components.get(c) is not None for k, v in lab.components[c].state_dict().items()}


def same_bits(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def changed(a: dict, b: dict) -> set:
    return {k for k in a if not torch.equal(a[k], b[k])}


# ---- LoRA files, named as the tools that write them name modules (written here, not by labkit) ---------------

def loha_parts(shape, g):
    flat_in = int(np.prod(shape[1:]))
    return {".hada_w1_a": rand(shape[0], RANK, g=g, scale=0.3), ".hada_w1_b": rand(RANK, flat_in, g=g, scale=0.3),
            ".hada_w2_a": rand(shape[0], RANK, g=g, scale=0.3), ".hada_w2_b": rand(RANK, flat_in, g=g, scale=0.3),
            ".alpha": torch.tensor(ALPHA)}


def lokr_parts(shape, g):
    """w1 full (2, 2) and w2 decomposed: kron(w1, w2a @ w2b) has the weight's shape."""
    out2, in2 = shape[0] // 2, int(np.prod(shape[1:])) // 2
    return {".lokr_w1": rand(2, 2, g=g, scale=1.0), ".lokr_w2_a": rand(out2, RANK, g=g),
            ".lokr_w2_b": rand(RANK, in2, g=g), ".alpha": torch.tensor(ALPHA)}


PARTS = {"kohya": lora_parts, "locon": lora_parts, "loha": loha_parts, "lokr": lokr_parts}


def peft_adapter(model, seed, rank=RANK, alpha=8, dora=False, targets=("to_q", "to_k", "to_v", "to_out.0")):
    """A copy of `model` with a random PEFT adapter that PEFT itself merged, and that adapter's state dict."""
    from diffusers.utils import recurse_remove_peft_layers
    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model
    from peft.tuners.lora import LoraLayer

    torch.manual_seed(seed)
    merged = copy.deepcopy(model)
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets), use_dora=dora,
                        init_lora_weights=False)
    inject_adapter_in_model(config, merged, adapter_name="ref")
    with torch.no_grad():
        for name, p in merged.named_parameters():
            if "lora_magnitude_vector" in name:
                p.mul_(1 + 0.3 * torch.rand(p.shape))
    state = {k: v.detach().clone() for k, v in get_peft_model_state_dict(merged, adapter_name="ref").items()}
    for module in merged.modules():
        if isinstance(module, LoraLayer):
            module.merge(adapter_names=["ref"])
    recurse_remove_peft_layers(merged)
    return merged, state, {"r": rank, "lora_alpha": alpha, "use_dora": dora}


def write_diffusers(folder, lab, layers: dict, metadata: dict):
    """A diffusers-format LoRA file written by diffusers' own save_lora_weights (keys `unet.*.lora_A.weight`)."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    cls = StableDiffusionXLPipeline if lab.layout == "xl" else StableDiffusionPipeline
    cls.save_lora_weights(folder, **{f"{c}_lora_layers": s for c, s in layers.items()},
                          **{f"{c}_lora_adapter_metadata": metadata[c] for c in layers},
                          weight_name="lora.safetensors")
    return folder / "lora.safetensors"


# ---- every format: full coverage, a changed picture ----------------------------------------------------------

@pytest.mark.parametrize("layout, fmt", [("sd", "kohya"), ("sd", "locon"), ("sd", "loha"), ("sd", "lokr"),
                                         ("xl", "kohya"), ("xl", "loha"), ("xl", "lokr")])
def test_each_format_covers_every_module_and_changes_the_picture(request, manager, tmp_path, layout, fmt):
    lab = request.getfixturevalue(layout)
    modules = kohya_modules(lab, fmt)
    path = write(tmp_path / f"{fmt}.safetensors", modules, PARTS[fmt])
    base, before = picture(lab), weights(lab)
    m = manager(lab)
    info = m.load(path)
    assert (info.coverage, info.missed, info.n_modules) == (1.0, (), len(modules))
    assert info.format == fmt and info.rank == RANK and info.family == lab.family
    assert set(info.targets) == {"unet", *TEXT[layout]}
    with_lora = picture(lab, m)
    assert np.abs(with_lora - base).mean() > 1
    touched = changed(before, weights(lab))
    assert len(touched) == len(modules)  # each module of the file changed exactly one weight
    m.unfuse()
    assert same_bits(before, weights(lab))


@pytest.mark.parametrize("layout", ["sd", "xl"])
def test_kohya_deltas_land_on_the_layers_their_names_give(request, manager, tmp_path, layout):
    """alpha/rank * up @ down appears on the layer the kohya name means: diffusers paths (SD1), LDM/SGM paths
    (SDXL, checked through the single-file writer's names), `text_model_` names on flat and nested encoders."""
    lab = request.getfixturevalue(layout)
    path = write(tmp_path / "k.safetensors", kohya_modules(lab, "kohya"), lora_parts)
    file = load_file(str(path))
    before = weights(lab)
    before_ldm = {k: v.clone() for k, v in unet_to_ldm(lab.components["unet"]).items()}
    m = manager(lab)
    m.load(path)
    m.apply()
    after, after_ldm = weights(lab), unet_to_ldm(lab.components["unet"])
    prefix, old, new = ("model.diffusion_model.", before_ldm, after_ldm) if layout == "xl" else ("unet.", before, after)
    unet_keys = {"lora_unet_" + k[len(prefix):-len(".weight")].replace(".", "_"): k
                 for k in new if k.startswith(prefix) and k.endswith(".weight")}
    unet_names = sorted({k.rsplit(".", 2)[0] for k in file if k.startswith("lora_unet_")})
    assert layout == "sd" or all("_input_blocks_" in n or "_middle_block_" in n or "_output_blocks_" in n
                                 for n in unet_names)
    for name in unet_names:
        expected = file[f"{name}.lora_up.weight"] @ file[f"{name}.lora_down.weight"] * ALPHA / RANK
        key = unet_keys[name]
        assert torch.allclose(new[key] - old[key], expected.reshape(new[key].shape), atol=1e-6)
    for component, prefix in TEXT[layout].items():
        path = next(p for p, _ in lab.components[component].named_modules() if p.endswith("layers.1.mlp.fc2"))
        name = f"{prefix}text_model_encoder_layers_1_mlp_fc2"
        expected = file[f"{name}.lora_up.weight"] @ file[f"{name}.lora_down.weight"] * ALPHA / RANK
        assert torch.allclose(delta_of(before, lab, path, component), expected, atol=1e-6)


# ---- hand computations ---------------------------------------------------------------------------------------

def delta_of(before, lab, module_path, component="unet"):
    """The change of one layer's weight since the `before` snapshot."""
    key = f"{component}.{module_path}.weight"
    return lab.components[component].get_submodule(module_path).weight.detach() - before[key]


def test_loha_delta_equals_hand_computation(sd, manager, tmp_path):
    g = gen(2)
    linear, conv = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", "down_blocks.1.resnets.0.conv1"
    w1a, w1b, w2a, w2b = rand(32, 4, g=g), rand(4, 32, g=g), rand(32, 4, g=g), rand(4, 32, g=g)
    c1a, c1b, c2a, c2b = rand(64, 2, g=g), rand(2, 32 * 9, g=g), rand(64, 2, g=g), rand(2, 32 * 9, g=g)
    t1, t2 = torch.zeros(2, 2, 3, 3), torch.zeros(2, 2, 3, 3)  # Tucker cores: non-zero at the kernel's centre only
    t1[:, :, 1, 1], t2[:, :, 1, 1] = rand(2, 2, g=g, scale=1), rand(2, 2, g=g, scale=1)
    u1a, u1b, u2a, u2b = rand(2, 64, g=g), rand(2, 64, g=g), rand(2, 64, g=g), rand(2, 64, g=g)
    lin, cnv, tuck = "lora_unet_" + linear.replace(".", "_"), "lora_unet_" + conv.replace(".", "_"), \
        "lora_unet_down_blocks_1_resnets_0_conv2"
    save_file({f"{lin}.hada_w1_a": w1a, f"{lin}.hada_w1_b": w1b, f"{lin}.hada_w2_a": w2a, f"{lin}.hada_w2_b": w2b,
               f"{lin}.alpha": torch.tensor(2.0),
               f"{cnv}.hada_w1_a": c1a, f"{cnv}.hada_w1_b": c1b, f"{cnv}.hada_w2_a": c2a, f"{cnv}.hada_w2_b": c2b,
               f"{tuck}.hada_w1_a": u1a, f"{tuck}.hada_w1_b": u1b, f"{tuck}.hada_w2_a": u2a,
               f"{tuck}.hada_w2_b": u2b, f"{tuck}.hada_t1": t1, f"{tuck}.hada_t2": t2},
              str(tmp_path / "loha.safetensors"))
    m, before = manager(sd), weights(sd)
    assert m.load(tmp_path / "loha.safetensors").coverage == 1.0
    m.set_weight("loha", 0.5)
    m.apply()
    hand = ((w1a.numpy() @ w1b.numpy()) * (w2a.numpy() @ w2b.numpy())) * 2.0 / 4 * 0.5  # alpha / rank * weight
    assert np.allclose(delta_of(before, sd, linear).numpy(), hand, atol=1e-6)
    hand_conv = ((c1a.numpy() @ c1b.numpy()) * (c2a.numpy() @ c2b.numpy())).reshape(64, 32, 3, 3) * 0.5
    assert np.allclose(delta_of(before, sd, conv).numpy(), hand_conv, atol=1e-6)  # no alpha: scale 1
    centre = (u1a.numpy().T @ t1[:, :, 1, 1].numpy() @ u1b.numpy()) * \
        (u2a.numpy().T @ t2[:, :, 1, 1].numpy() @ u2b.numpy()) * 0.5  # (out, r) (r, r) (r, in), per factor
    tucker = delta_of(before, sd, "down_blocks.1.resnets.0.conv2").numpy()
    assert np.allclose(tucker[:, :, 1, 1], centre, atol=1e-6)
    assert np.abs(tucker).sum() == pytest.approx(np.abs(centre).sum(), rel=1e-5)  # nothing off the centre


def test_lokr_delta_equals_hand_computation(sd, manager, tmp_path):
    g = gen(3)
    linear = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_v"  # (32, 64)
    full_pair = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k"  # (32, 32)
    conv = "down_blocks.1.resnets.0.conv2"  # (64, 64, 3, 3)
    w1, w2a, w2b = rand(4, 2, g=g, scale=1), rand(8, 3, g=g), rand(3, 32, g=g)
    f1, f2 = rand(2, 2, g=g, scale=1), rand(16, 16, g=g)
    k1, k2 = rand(4, 4, g=g, scale=1), rand(16, 16, 3, 3, g=g)
    names = {p: "lora_unet_" + p.replace(".", "_") for p in (linear, full_pair, conv)}
    save_file({f"{names[linear]}.lokr_w1": w1, f"{names[linear]}.lokr_w2_a": w2a, f"{names[linear]}.lokr_w2_b": w2b,
               f"{names[linear]}.alpha": torch.tensor(6.0),
               f"{names[full_pair]}.lokr_w1": f1, f"{names[full_pair]}.lokr_w2": f2,
               f"{names[full_pair]}.alpha": torch.tensor(6.0),  # two full factors: alpha does not scale
               f"{names[conv]}.lokr_w1": k1, f"{names[conv]}.lokr_w2": k2}, str(tmp_path / "lokr.safetensors"))
    m, before = manager(sd), weights(sd)
    assert m.load(tmp_path / "lokr.safetensors").coverage == 1.0
    m.apply()
    assert np.allclose(delta_of(before, sd, linear).numpy(), np.kron(w1.numpy(), w2a.numpy() @ w2b.numpy()) * 6.0 / 3,
                       atol=1e-6)
    assert np.allclose(delta_of(before, sd, full_pair).numpy(), np.kron(f1.numpy(), f2.numpy()), atol=1e-6)
    assert np.allclose(delta_of(before, sd, conv).numpy(), np.kron(k1.numpy()[:, :, None, None], k2.numpy()), atol=1e-6)


def test_locon_3x3_kernels_act_like_the_layers_they_factor(sd, manager, tmp_path):
    """A LoCon 3x3 down + 1x1 up, and a Tucker down/mid/up, fold into a kernel that convolves like running the
    small convolutions one after another."""
    g = gen(4)
    plain, tucker = "down_blocks.1.resnets.0.conv1", "down_blocks.1.resnets.0.conv2"  # (64, 32|64, 3, 3)
    down, up = rand(4, 32, 3, 3, g=g), rand(64, 4, 1, 1, g=g)
    t_down, t_mid, t_up = rand(4, 64, 1, 1, g=g), rand(4, 4, 3, 3, g=g), rand(64, 4, 1, 1, g=g)
    p, t = "lora_unet_" + plain.replace(".", "_"), "lora_unet_" + tucker.replace(".", "_")
    save_file({f"{p}.lora_down.weight": down, f"{p}.lora_up.weight": up, f"{p}.alpha": torch.tensor(8.0),
               f"{t}.lora_down.weight": t_down, f"{t}.lora_mid.weight": t_mid, f"{t}.lora_up.weight": t_up},
              str(tmp_path / "locon.safetensors"))
    m, before = manager(sd), weights(sd)
    info = m.load(tmp_path / "locon.safetensors")
    assert info.coverage == 1.0 and info.format == "locon"
    m.apply()
    conv = torch.nn.functional.conv2d
    x = torch.randn(1, 32, 6, 6, generator=g)
    assert torch.allclose(conv(x, delta_of(before, sd, plain), padding=1), conv(conv(x, down, padding=1), up) * 2.0,
                          atol=1e-5)  # alpha 8 / rank 4
    y = torch.randn(1, 64, 6, 6, generator=g)
    assert torch.allclose(conv(y, delta_of(before, sd, tucker), padding=1),
                          conv(conv(conv(y, t_down), t_mid, padding=1), t_up), atol=1e-5)


def test_dora_scale_delta_equals_hand_computation(sd, manager, tmp_path):
    """kohya/LyCORIS DoRA: W' = m * (W + dW) / ||W + dW||, normed per output row for an (out, 1) `dora_scale`
    and per input column for a (1, in) one; at weight w the change is w * (W' - W)."""
    g = gen(5)
    rows, cols = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_v", "mid_block.attentions.0.proj_out"
    parts = {p: (rand(4, 32 if p == rows else 64, g=g), rand(32 if p == rows else 64, 4, g=g)) for p in (rows, cols)}
    scales = {rows: 1 + torch.rand(32, 1, generator=g), cols: 1 + torch.rand(1, 64, generator=g)}
    state = {}
    for p, (down, up) in parts.items():
        name = "lora_unet_" + p.replace(".", "_")
        state.update({f"{name}.lora_down.weight": down, f"{name}.lora_up.weight": up,
                      f"{name}.alpha": torch.tensor(2.0), f"{name}.dora_scale": scales[p]})
    save_file(state, str(tmp_path / "dora.safetensors"))
    m, before = manager(sd), weights(sd)
    info = m.load(tmp_path / "dora.safetensors", weight=0.5)
    assert info.coverage == 1.0 and info.format == "kohya+dora"
    m.apply()
    for p, axis in ((rows, 1), (cols, 0)):
        w0 = before[f"unet.{p}.weight"].numpy().reshape(parts[p][1].shape[0], -1)  # (out, in): proj_out is a 1x1 conv
        w = w0 + parts[p][1].numpy() @ parts[p][0].numpy() * 2.0 / 4
        hand = scales[p].numpy() * w / np.linalg.norm(w, axis=axis, keepdims=True)
        assert np.allclose(delta_of(before, sd, p).numpy().reshape(w0.shape), 0.5 * (hand - w0), atol=1e-6)


# ---- diffusers / PEFT files: folded weights equal PEFT's own merge -------------------------------------------

@pytest.mark.parametrize("layout, dora", [("sd", False), ("sd", True), ("xl", False)])
def test_diffusers_peft_file_folds_to_what_peft_merges(request, manager, tmp_path, layout, dora):
    """A file written by diffusers' save_lora_weights (lora_alpha != r in its metadata; DoRA magnitudes; SD1's
    1x1-conv proj_in) folds into exactly the weights PEFT's own merge gives: fused equals unfused."""
    lab = request.getfixturevalue(layout)
    unet_targets = ("to_q", "to_k", "to_v", "to_out.0", "proj_in")
    models, layers, metadata = {}, {}, {}
    for i, component in enumerate(["unet", *TEXT[layout]]):
        targets = unet_targets if component == "unet" else ("q_proj", "v_proj", "fc1")
        models[component], layers[component], metadata[component] = peft_adapter(
            lab.components[component], seed=10 + i, dora=dora, targets=targets)
    path = write_diffusers(tmp_path, lab, layers, metadata)
    base = picture(lab)
    assert next(iter(load_file(str(path)))).split(".")[0] in ("unet", "text_encoder", "text_encoder_2")
    m = manager(lab)
    info = m.load(path)
    assert info.coverage == 1.0 and info.format == "peft" + ("+dora" if dora else "")
    m.apply()
    for component, merged in models.items():
        ours, peft = lab.components[component].state_dict(), merged.state_dict()
        assert ours.keys() == peft.keys()
        worst = max((ours[k] - peft[k]).abs().max().item() for k in ours)
        assert worst < 2e-5, f"{component}: folded weights differ from PEFT's merge by {worst}"
    assert np.abs(picture(lab, m) - base).mean() > 1


@pytest.mark.parametrize("family", ["toy", "toy-xl"])
def test_kohya_file_folds_to_what_diffusers_fuses(manager, tmp_path, family):
    """diffusers' own kohya reader (load_lora_weights + fuse_lora) puts the same weights where labkit does: SD1
    diffusers names, SDXL SGM names, te / te1 / te2."""
    lab = make_lab(family, seed=6)
    path = write(tmp_path / "k.safetensors", kohya_modules(lab, "kohya"), lora_parts)
    m = manager(lab)
    m.load(path)
    m.apply()
    ours = weights(lab)
    m.unfuse()
    pipe = lab.pipe
    pipe.load_lora_weights(str(tmp_path), weight_name="k.safetensors", adapter_name="k")
    pipe.fuse_lora(adapter_names=["k"])
    pipe.unload_lora_weights()
    theirs = weights(lab)
    assert ours.keys() == theirs.keys()
    assert max((ours[k] - theirs[k]).abs().max().item() for k in ours) < 1e-5


# ---- weights, toggles, several LoRAs ---------------------------------------------------------------------------

def test_weight_zero_and_disabled_give_the_picture_without_lora(sd, manager, tmp_path):
    path = write(tmp_path / "style.safetensors", kohya_modules(sd, "kohya"), lora_parts)
    base, before = picture(sd), weights(sd)
    m = manager(sd)
    m.load(path, weight=0.0)
    assert np.array_equal(picture(sd, m), base) and same_bits(before, weights(sd))
    m.set_weight("style", 1.0)
    assert not np.array_equal(picture(sd, m), base)
    m.disable("style")
    assert np.array_equal(picture(sd, m), base) and same_bits(before, weights(sd))
    assert m.active == {}
    m.set_weight("style", 0.0, te_weight=1.0)  # text encoder only: the UNet keeps its own bits
    m.enable("style")
    m.apply()
    assert not changed(before, weights(sd)) & {k for k in before if k.startswith("unet.")}
    assert changed(before, weights(sd))


def test_toggling_back_and_forth_is_bit_exact(sd, manager, tmp_path):
    a = write(tmp_path / "a.safetensors", kohya_modules(sd, "locon"), lora_parts, seed=1)
    b = write(tmp_path / "b.safetensors", kohya_modules(sd, "kohya"), loha_parts, seed=2)
    base, before = picture(sd), weights(sd)
    m = manager(sd)
    m.load(a, weight=0.7)
    m.load(b, weight=-0.5, te_weight=0.3)
    assert m.active == {"a": (0.7, 0.7), "b": (0.3, -0.5)}
    both, both_weights = picture(sd, m), weights(sd)
    assert m.apply() is False  # nothing changed: nothing to do
    m.disable("a")
    only_b = picture(sd, m)
    m.set_weight("b", 2.0)
    picture(sd, m)
    m.set_weight("b", -0.5, te_weight=0.3)
    assert np.array_equal(picture(sd, m), only_b)
    m.enable("a")
    assert np.array_equal(picture(sd, m), both) and same_bits(both_weights, weights(sd))
    for name in ("a", "b"):
        m.disable(name)
    assert np.array_equal(picture(sd, m), base) and same_bits(before, weights(sd))
    assert m.backups == 0  # nothing folded, no copies kept


def test_two_loras_add_their_weighted_deltas(sd, manager, tmp_path):
    layer = "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k"
    name = "lora_unet_" + layer.replace(".", "_")
    files = [write(tmp_path / f"{n}.safetensors", [(name, (64, 64))], lora_parts, seed=s) for n, s in (("p", 5),
                                                                                                      ("q", 6))]
    deltas = [load_file(str(f)) for f in files]
    deltas = [d[f"{name}.lora_up.weight"] @ d[f"{name}.lora_down.weight"] * ALPHA / RANK for d in deltas]
    m, before = manager(sd), weights(sd)
    for f in files:
        m.load(f)
    m.set_weight("p", 0.25)
    m.set_weight("q", -1.5)
    m.apply()
    assert torch.allclose(delta_of(before, sd, layer), 0.25 * deltas[0] - 1.5 * deltas[1], atol=1e-6)
    m.remove("p")
    m.apply()
    assert torch.allclose(delta_of(before, sd, layer), -1.5 * deltas[1], atol=1e-6)
    with pytest.raises(BadInput, match="not a finite number"):
        m.set_weight("q", float("nan"))
    with pytest.raises(BadInput, match="No LoRA named 'p'"):
        m.enable("p")


# ---- the family check and coverage ---------------------------------------------------------------------------

def test_an_sd1_lora_into_an_sdxl_lab_names_both_families(xl, sd, manager, tmp_path):
    before = weights(xl)
    with pytest.raises(LoraMismatch, match=r"sd1 LoRA.*toy-xl model.*Load it into a sd1 model"):
        manager(xl).load(sd1_sized_lora(tmp_path / "sd15_style.safetensors"))
    toy_lora = write(tmp_path / "toy.safetensors", kohya_modules(sd, "kohya"), lora_parts)
    with pytest.raises(LoraMismatch, match=r"toy LoRA .*toy-xl model"):
        manager(xl).load(toy_lora)
    assert same_bits(before, weights(xl))


def test_a_base_lora_does_not_fit_the_refiner(xl, refiner, manager, tmp_path):
    path = write(tmp_path / "xl.safetensors", kohya_modules(xl, "kohya"), lora_parts)
    assert manager(xl).load(path).coverage == 1.0
    with pytest.raises(LoraMismatch, match=r"toy-xl LoRA.*toy-xl-refiner.*not to the refiner"):
        manager(refiner).load(path)


def test_half_matching_lora_raises_under_strict_and_reports_otherwise(sd, manager, tmp_path):
    modules = kohya_modules(sd, "kohya")
    half = len(modules) // 2
    bogus = [(f"lora_unet_output_blocks_{i}_1_proj_nowhere", shape) for i, (_, shape) in enumerate(modules[:half])]
    path = write(tmp_path / "half.safetensors", bogus + modules[half:], lora_parts)
    m = manager(sd)
    with pytest.raises(LoraMismatch, match=rf"only {len(modules) - half} of its {len(modules)} modules.*strict=False"):
        m.load(path)
    assert m.active == {}
    info = m.load(path, strict=False)
    assert info.coverage == pytest.approx(0.5, abs=0.02)
    assert set(info.missed) == {name for name, _ in bogus}
    assert all("no layer" in why for why in info.why_missed.values())
    before = weights(sd)
    m.apply()
    assert len(changed(before, weights(sd))) == len(modules) - half  # the matching half still applies


def test_files_that_are_not_loras_are_refused(sd, manager, tmp_path):
    m = manager(sd)
    checkpoint = sd.save_single_file(tmp_path / "model.safetensors")
    with pytest.raises(UnsupportedFile, match=r"not a LoRA: it is a whole model.*labkit.open"):
        m.load(checkpoint)
    path = write(tmp_path / "good.safetensors", kohya_modules(sd, "kohya")[:4], lora_parts)
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(UnsupportedFile, match="corrupt or truncated"):
        m.load(tmp_path / "cut.safetensors")
    state = load_file(str(path))
    state[next(k for k in state if k.endswith(".lora_down.weight"))][0, 0] = float("nan")
    save_file(state, str(tmp_path / "nan.safetensors"))
    with pytest.raises(UnsupportedFile, match="NaN"):
        m.load(tmp_path / "nan.safetensors")
    assert m.load(path).name == "good"
    with pytest.raises(BadInput, match="already loaded"):
        m.load(path)
    assert m.load(path, name="good2").name == "good2" and list(m.active) == ["good", "good2"]


# ---- prompt tags and the search paths ------------------------------------------------------------------------

def test_for_call_reads_tag_loras_from_the_search_paths(sd, manager, tmp_path):
    folder = tmp_path / "models" / "Lora" / "styles"
    folder.mkdir(parents=True)
    path = write(folder / "sparkle.safetensors", kohya_modules(sd, "kohya"), lora_parts)
    base, before = picture(sd), weights(sd)
    m = manager(sd)
    m.search_paths = [tmp_path / "nowhere", tmp_path / "models" / "Lora"]
    assert m.find("sparkle") == path
    with m.for_call([Tag("sparkle", 0.8, None)]) as applied:
        assert [(a.name, a.te_weight, a.unet_weight, a.hash) for a in applied] == [("sparkle", 0.8, 0.8,
                                                                                    autov3(path))]
        tagged = np.asarray(sd.txt2img(PROMPT, **FAST).image, dtype=np.int16)
    assert np.abs(tagged - base).mean() > 1
    assert m.active == {}  # the tag lasted one call
    assert np.array_equal(picture(sd, m), base) and same_bits(before, weights(sd))
    with pytest.raises(BadInput, match=r"No LoRA named 'missing'(.|\n)*nowhere(.|\n)*models/Lora"):
        with m.for_call([Tag("missing", 1.0, None)]):
            pass


def test_a_tag_overrides_a_loaded_loras_toggle_for_one_call(sd, manager, tmp_path):
    path = write(tmp_path / "ink.safetensors", kohya_modules(sd, "kohya"), lora_parts)
    m = manager(sd)
    m.load(path)
    m.disable("ink")
    with m.for_call([Tag("ink", 0.0, 1.0)]) as applied:
        assert [(a.name, a.targets) for a in applied] == [("ink", ("unet",))]  # te weight 0: UNet only
    assert m.active == {} and m.info("ink").weights == (1.0, 1.0)


# ---- seeing the effect -----------------------------------------------------------------------------------------

def test_effect_per_block_and_its_heat_map(xl, manager, tmp_path):
    only_in = [(n, s) for n, s in kohya_unet_sgm(xl) if n.startswith("lora_unet_input_blocks_5_")]
    path = write(tmp_path / "in5.safetensors", only_in + kohya_text(xl), lora_parts)
    m = manager(xl)
    m.load(path)
    effect = m.effect("in5")
    assert list(effect) == ["TE1", "TE2", "IN05"] and all(v > 0 for v in effect.values())
    m.set_weight("in5", 2.0)
    assert m.effect("in5")["IN05"] == pytest.approx(2 * effect["IN05"], rel=1e-6)
    figure = m.plot_effect()
    assert figure._repr_png_()[:4] == b"\x89PNG"  # shows as a picture in a notebook, without pyplot
    assert isinstance(figure, __import__("matplotlib.figure").figure.Figure) and figure.axes[0].images


def test_ab_compares_the_same_seed_with_and_without(sd, manager, tmp_path):
    path = write(tmp_path / "ab.safetensors", kohya_modules(sd, "kohya"), lora_parts)
    base, m = picture(sd), manager(sd)
    m.load(path)
    without, with_lora, diff = m.ab("ab", PROMPT, seed=FAST["seed"], steps=3, sampler="Euler")
    assert np.array_equal(np.asarray(without, dtype=np.int16), base)
    assert np.asarray(diff).max() > 0 and not np.array_equal(np.asarray(with_lora), np.asarray(without))
    assert m.active == {"ab": (1.0, 1.0)}  # the toggle is as it was


def test_import_does_not_load_torch():
    code = "import sys, labkit.lora; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- training ----------------------------------------------------------------------------------------------------

def denoising_loss(lab, images, captions):
    """The diffusion loss on fixed noise and timesteps: lower means the model reproduces these images better."""
    from labkit.lora.training import _noise_scheduler

    g, pipe, vae, unet = gen(0), lab.pipe, lab.components["vae"], lab.components["unet"]
    x = torch.cat([pipe.image_processor.preprocess(im, height=64, width=64) for im in images])  # (N, 3, 64, 64)
    with torch.no_grad():
        latents = (vae.encode(x).latent_dist.mean * vae.config.scaling_factor).repeat(4, 1, 1, 1)
        text = pipe.encode_prompt(captions * 4, "cpu", 1, False)[0]
        noise = torch.randn(latents.shape, generator=g)
        t = torch.tensor([100, 300, 500, 800]).repeat_interleave(len(images))
        pred = unet(_noise_scheduler(lab).add_noise(latents, noise, t), t, text).sample
    return float(((pred - noise) ** 2).mean())


def solid(*colours):
    from PIL import Image

    return [Image.new("RGB", (64, 64), c) for c in colours]


def test_train_lowers_the_loss_and_writes_a_kohya_file_that_round_trips(manager, tmp_path):
    from peft import LoraConfig

    lab = make_lab("toy", seed=4)
    images, captions = solid((220, 30, 30), (30, 30, 220), (30, 200, 30)), ["red", "blue", "green"]
    before, loss_before = weights(lab), denoising_loss(lab, images, captions)
    result = train(lab, images, captions, rank=4, steps=10, lr=1e-2, out=tmp_path / "colours.safetensors",
                   trigger="flatcolour", text_encoder=True, progress=False)
    assert len(result.losses) == 10 and same_bits(before, weights(lab))  # the Lab is left as it was
    assert not hasattr(lab.components["unet"], "peft_config")
    assert oct(result.path.stat().st_mode & 0o777) == "0o644" and [p.name for p in tmp_path.iterdir()] == \
           ["colours.safetensors"]  # readable by others, no temporary file left
    m = manager(lab)
    info = m.load(result.path)
    assert (info.coverage, info.format, info.rank, info.alpha) == (1.0, "kohya", 4, 4.0)
    assert info.targets == ("unet", "text_encoder")
    text_config = LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "k_proj", "v_proj", "out_proj"])
    merged = {c: _peft_merge(lab.components[c], config, result.peft_state[c])
              for c, config in (("unet", result.config), ("text_encoder", text_config))}
    m.apply()
    assert denoising_loss(lab, images, captions) < loss_before - 0.05
    for component in merged:  # the kohya file folds to what PEFT merges from its own state dict
        ours = lab.components[component].state_dict()
        assert max((ours[k] - merged[component][k]).abs().max().item() for k in ours) < 1e-5
    meta = __import__("labkit").inspect(result.path).metadata
    assert meta["ss_network_module"] == "networks.lora" and meta["ss_base_model_version"] == "labkit_toy"
    assert (meta["ss_network_dim"], meta["ss_network_alpha"], meta["ss_num_train_images"], meta["ss_steps"]) == \
        ("4", "4", "3", "10")
    assert meta["ss_output_name"] == "colours" and "flatcolour" in meta["ss_tag_frequency"]
    with pytest.raises(BadInput, match="already exists"):
        train(lab, images, captions, steps=1, out=result.path, progress=False)


def _peft_merge(model, config, state):
    """A copy of `model` with the PEFT `state` merged by PEFT itself: its state dict."""
    from diffusers.utils import recurse_remove_peft_layers
    from peft import inject_adapter_in_model, set_peft_model_state_dict
    from peft.tuners.lora import LoraLayer

    model = copy.deepcopy(model)
    inject_adapter_in_model(config, model, adapter_name="ref")
    set_peft_model_state_dict(model, state, adapter_name="ref")
    for module in model.modules():
        if isinstance(module, LoraLayer):
            module.merge(adapter_names=["ref"])
    recurse_remove_peft_layers(model)
    return model.state_dict()


def test_train_on_sdxl_writes_sgm_and_te1_te2_names(manager, tmp_path):
    lab = make_lab("toy-xl", seed=4)
    result = train(lab, solid((200, 200, 40)), ["yellow"], steps=2, lr=1e-3, out=tmp_path / "xl.safetensors",
                   text_encoder=True, progress=False)
    keys = load_file(str(result.path)).keys()
    assert {k.split("_")[2] for k in keys if k.startswith("lora_unet_")} <= {"input", "middle", "output"}
    assert any(k.startswith("lora_te1_text_model_encoder_layers_") for k in keys)
    assert any(k.startswith("lora_te2_text_model_encoder_layers_") for k in keys)
    info = manager(lab).load(result.path)
    assert info.coverage == 1.0 and info.targets == ("unet", "text_encoder", "text_encoder_2")
    assert __import__("labkit").inspect(result.path).metadata["ss_base_model_version"] == "labkit_toy-xl"


def test_train_all_targets_writes_a_locon_file_with_a_cosine_schedule(manager, tmp_path):
    lab = make_lab("toy", seed=4)
    images, captions = solid((220, 30, 30), (30, 30, 220)), ["red", "blue"]
    result = train(lab, images, captions, rank=4, steps=6, lr=1e-2, out=tmp_path / "locon.safetensors",
                   targets="all", lr_schedule="cosine", text_encoder=True, progress=False)
    tensors = load_file(str(result.path))
    convs = [k for k, v in tensors.items() if k.endswith("lora_down.weight") and v.ndim == 4]
    assert any("resnets" in k and "conv1" in k for k in convs)  # (r, in, 3, 3) downs: LoCon's conv layers
    assert any("_ff_net_2." in k for k in tensors) and any("_proj_in." in k for k in tensors)
    assert any(k.startswith("lora_te_") and "_mlp_fc1." in k for k in tensors)  # kohya's text set: MLPs too
    report = __import__("labkit").inspect(result.path)
    assert report.lora.format == "locon"
    assert report.metadata["ss_lr_scheduler"] == "cosine" and report.metadata["ss_max_grad_norm"] == "1.0"
    assert "ss_ema_decay" not in report.metadata
    assert json.loads(report.metadata["ss_network_args"]) == {"conv_dim": "4", "conv_alpha": "4"}
    before, m = weights(lab), manager(lab)
    info = m.load(result.path)
    assert info.coverage == 1.0 and not info.missed
    m.apply()
    moved = changed(before, weights(lab))
    assert any("resnets" in k and "conv1.weight" in k for k in moved) and any("ff.net.2" in k for k in moved)


def test_train_with_ema_writes_the_moving_average(tmp_path):
    lab = make_lab("toy", seed=4)
    images, captions = solid((220, 30, 30), (30, 30, 220)), ["red", "blue"]

    def run(steps, ema):
        return train(lab, images, captions, rank=4, steps=steps, lr=1e-2, ema=ema, progress=False,
                     out=tmp_path / f"{steps}-{ema}.safetensors")

    def ups(result):  # the lora_B weights, which start at zero
        return torch.cat([v.flatten() for k, v in result.peft_state["unet"].items() if "lora_B" in k])

    first, second, averaged = ups(run(1, 0.0)), ups(run(2, 0.0)), ups(run(2, 0.999))
    # diffusers' EMA warms up: it copies step 1, then mixes in step 2 at decay (1 + 1) / (10 + 1)
    assert not torch.allclose(first, second)
    assert torch.allclose(averaged, 2 / 11 * first + 9 / 11 * second, atol=1e-6)
    assert __import__("labkit").inspect(tmp_path / "2-0.999.safetensors").metadata["ss_ema_decay"] == "0.999"


@pytest.mark.parametrize("text_encoder", [True, False])
def test_train_with_caption_dropout_trains_on_the_empty_caption(tmp_path, monkeypatch, text_encoder):
    from labkit.lora import training

    lab = make_lab("toy", seed=4)
    images, captions = solid((220, 30, 30), (30, 30, 220)), ["red", "blue"]
    seen, encode, select = [], training._encode, training._select
    embedded = {}  # frozen encoders: what each row of the precomputed embeddings holds
    if text_encoder:  # captions are embedded each step: record them
        monkeypatch.setattr(training, "_encode", lambda lab, ps: seen.extend(ps) or encode(lab, ps))
    else:  # embedded once; each step picks rows: record the rows' captions
        monkeypatch.setattr(training, "_encode", lambda lab, ps: embedded.update(enumerate(ps)) or encode(lab, ps))
        monkeypatch.setattr(training, "_select", lambda c, idx: seen.extend(embedded[int(i)] for i in idx)
                            or select(c, idx))

    def run(dropout):
        seen.clear()
        train(lab, images, captions, rank=4, steps=6, lr=1e-2, batch_size=2, text_encoder=text_encoder,
              caption_dropout=dropout, out=tmp_path / f"{dropout}-{text_encoder}.safetensors", progress=False)
        return list(seen)

    assert sorted(run(0.0)) == ["blue"] * 6 + ["red"] * 6
    used = run(0.5)  # about half of the 12 samples get the empty caption
    assert len(used) == 12 and 2 <= used.count("") <= 10 and {"red", "blue"} <= set(used)
    meta = __import__("labkit").inspect(tmp_path / f"0.5-{text_encoder}.safetensors").metadata
    assert meta["ss_caption_dropout_rate"] == "0.5"


@pytest.mark.parametrize("bad", [{"targets": "everything"}, {"lr_schedule": "linear"}, {"ema": 1.0}, {"ema": "0.9"},
                                 {"save_dtype": "bfloat16"}, {"caption_dropout": 1.0}, {"caption_dropout": "0.1"}])
def test_train_rejects_unknown_targets_and_schedules(tmp_path, bad):
    lab = make_lab("toy", seed=4)
    with pytest.raises(BadInput, match="use one of|decay is in|share of empty captions"):
        train(lab, solid((1, 2, 3)), ["x"], steps=1, out=tmp_path / "x.safetensors", progress=False, **bad)
    assert not (tmp_path / "x.safetensors").exists()


def test_toy_style_lora_recipe_writes_a_locon_file_and_never_replaces_a_users_file(tmp_path):
    from labkit.toy.loras import DEFAULTS, train_style

    lab = make_lab("toy", seed=4)
    result = train_style("stripes", lab=lab, out_dir=tmp_path, steps=2, images=4, batch=2, progress=False)
    report = __import__("labkit").inspect(result.path)
    assert result.path == tmp_path / "stripes.safetensors" and len(result.losses) == 2
    assert report.lora.format == "locon" and report.lora.rank == DEFAULTS["rank"]
    assert report.metadata["ss_lr_scheduler"] == DEFAULTS["lr_schedule"]
    assert report.metadata["ss_num_train_images"] == "4"
    assert report.metadata["ss_ema_decay"] == str(DEFAULTS["ema"])
    assert {v.dtype for v in load_file(str(result.path)).values()} == {getattr(torch, DEFAULTS["save_dtype"])}
    with pytest.raises(BadInput, match="already exists"):
        train_style("stripes", lab=lab, out_dir=tmp_path, steps=1, images=2, batch=2, progress=False)


def test_train_checks_the_output_folder_before_training(tmp_path):
    lab = make_lab("toy", seed=4)
    with pytest.raises(BadInput, match="does not exist; create it"):
        train(lab, solid((1, 2, 3)), ["x"], steps=1, out=tmp_path / "missing" / "x.safetensors", progress=False)
