"""labkit.export: diffusers components -> an A1111/ComfyUI single file, checked with diffusers' own readers."""

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (
    convert_ldm_clip_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    convert_open_clip_checkpoint,
    create_diffusers_clip_model_from_ldm,
)
from safetensors.torch import load_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from labkit import export
from labkit.errors import BadInput

U = "model.diffusion_model."
CROSS, DOWN = "CrossAttnDownBlock2D", "DownBlock2D"
CROSS_UP, UP = "CrossAttnUpBlock2D", "UpBlock2D"
CLIP_L_WIDTH, CLIP_G_WIDTH, G_PROJECTION, TIME_DIM = 32, 48, 40, 8  # G's projection != width on purpose

TINY = dict(  # labkit's tiny models: 3 levels, one resnet per level
    sample_size=16,
    block_out_channels=(32, 64, 64),
    layers_per_block=1,
    down_block_types=(CROSS, CROSS, DOWN),
    up_block_types=(UP, CROSS_UP, CROSS_UP),
    cross_attention_dim=CLIP_L_WIDTH,
    norm_num_groups=8,
)
SDXL_LIKE = dict(
    sample_size=16,
    block_out_channels=(16, 32, 32),
    layers_per_block=2,
    down_block_types=(DOWN, CROSS, CROSS),
    up_block_types=(CROSS_UP, CROSS_UP, UP),
    transformer_layers_per_block=(1, 2, 3),
    attention_head_dim=(2, 4, 4),
    use_linear_projection=True,
    cross_attention_dim=CLIP_L_WIDTH + CLIP_G_WIDTH,
    addition_embed_type="text_time",
    addition_time_embed_dim=TIME_DIM,
    projection_class_embeddings_input_dim=6 * TIME_DIM + G_PROJECTION,
    norm_num_groups=8,
)
UNET_CONFIGS = {
    "tiny": TINY,
    "sd1-like": dict(  # SD1's shape: 4 levels, two resnets each, attention on the first three
        TINY,
        block_out_channels=(16, 32, 32, 32),
        layers_per_block=2,
        down_block_types=(CROSS, CROSS, CROSS, DOWN),
        up_block_types=(UP, CROSS_UP, CROSS_UP, CROSS_UP),
    ),
    "sdxl-like": SDXL_LIKE,
    "refiner-like": dict(
        SDXL_LIKE,
        block_out_channels=(16, 32, 32, 32),
        down_block_types=(DOWN, CROSS, CROSS, DOWN),
        up_block_types=(UP, CROSS_UP, CROSS_UP, UP),
        transformer_layers_per_block=2,
        attention_head_dim=4,
        cross_attention_dim=CLIP_G_WIDTH,
        projection_class_embeddings_input_dim=5 * TIME_DIM + G_PROJECTION,
    ),
    "inpaint": dict(TINY, in_channels=9),
}
VAE_CONFIG = dict(
    block_out_channels=(8, 16, 16),
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=4,
    sample_size=32,
)


def clip_config(width, projection=32):
    return CLIPTextConfig(
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=2,
        num_attention_heads=2,
        vocab_size=1000,
        max_position_embeddings=77,
        projection_dim=projection,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )


def unet(name):
    torch.manual_seed(0)
    return UNet2DConditionModel(**UNET_CONFIGS[name]).eval()


def vae():
    torch.manual_seed(0)
    return AutoencoderKL(**VAE_CONFIG).eval()


def clip_l():
    torch.manual_seed(0)
    return CLIPTextModel(clip_config(CLIP_L_WIDTH)).eval()


def clip_g():
    torch.manual_seed(1)
    return CLIPTextModelWithProjection(clip_config(CLIP_G_WIDTH, G_PROJECTION)).eval()


def assert_same_weights(converted, original):
    assert converted.keys() == original.keys()
    for key, tensor in original.items():
        assert torch.equal(converted[key], tensor), key


def assert_close(got, want):
    """Same weights, same maths; CPU kernels may still round differently (memory alignment): ~1e-6."""
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def with_text_model_prefix(state):
    """HF CLIP keys as diffusers' readers return them (transformers 5 flattened CLIPTextModel)."""
    return {key if key.startswith("text_model.") else "text_model." + key: t for key, t in state.items()}


# --- each writer is the exact inverse of diffusers' reader -------------------------------------------------


@pytest.mark.parametrize("name", list(UNET_CONFIGS))
def test_unet_round_trips_through_diffusers_reader(name):
    model = unet(name)
    ldm = export.unet_to_ldm(model)
    assert all(key.startswith(U) for key in ldm)
    assert_same_weights(convert_ldm_unet_checkpoint(ldm, model.config), model.state_dict())


def test_unet_indices_follow_the_original_sd1_and_sdxl_layouts():
    sd1 = export.unet_to_ldm(unet("sd1-like"))
    blocks = {int(key.split(".")[3]) for key in sd1 if key.startswith(U + "input_blocks.")}
    assert blocks == set(range(12))  # conv_in + 4 levels x 2 resnets + 3 downsamplers
    for key in ("input_blocks.3.0.op.weight", "input_blocks.8.1.proj_in.weight", "middle_block.2.out_layers.3.weight",
                "output_blocks.2.1.conv.weight", "output_blocks.5.2.conv.weight", "output_blocks.11.1.proj_out.weight",
                "output_blocks.11.0.skip_connection.weight"):  # the last one is diffusers' "v1" signal
        assert U + key in sd1, key
    assert U + "input_blocks.10.1.proj_in.weight" not in sd1  # the deepest level has no attention

    xl = export.unet_to_ldm(unet("sdxl-like"))
    assert U + "input_blocks.4.1.transformer_blocks.1.attn2.to_k.weight" in xl
    assert U + "input_blocks.7.1.transformer_blocks.2.attn2.to_k.weight" in xl
    assert U + "input_blocks.1.1.proj_in.weight" not in xl  # SDXL's first level has no attention
    assert U + "output_blocks.2.2.conv.weight" in xl and U + "output_blocks.5.2.conv.weight" in xl
    assert xl[U + "label_emb.0.0.weight"].shape[1] == 6 * TIME_DIM + G_PROJECTION


def test_full_size_architectures_give_the_original_files_key_counts():
    """Real SD1.5 / SDXL shapes built on the meta device (no memory): the counts of the original files."""
    with torch.device("meta"):
        sd1 = UNet2DConditionModel(cross_attention_dim=768)  # diffusers' defaults are SD1's UNet
        xl = UNet2DConditionModel(**dict(
            SDXL_LIKE, sample_size=128, block_out_channels=(320, 640, 1280), transformer_layers_per_block=(1, 2, 10),
            attention_head_dim=(5, 10, 20), cross_attention_dim=2048, addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816, norm_num_groups=32,
        ))
        sd_vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                               up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2)
    sd1_ldm, xl_ldm, vae_ldm = export.unet_to_ldm(sd1), export.unet_to_ldm(xl), export.vae_to_ldm(sd_vae)
    assert (len(sd1_ldm), len(xl_ldm), len(vae_ldm)) == (686, 1680, 248)
    assert sd1_ldm[U + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"].shape == (320, 768)
    assert xl_ldm[U + "input_blocks.8.1.transformer_blocks.9.attn2.to_k.weight"].shape == (1280, 2048)
    assert xl_ldm[U + "label_emb.0.0.weight"].shape == (1280, 2816)
    assert vae_ldm["first_stage_model.decoder.up.0.block.0.nin_shortcut.weight"].shape == (128, 256, 1, 1)


def test_vae_round_trips_and_writes_mid_attention_as_1x1_convs():
    model = vae()
    ldm = export.vae_to_ldm(model)
    assert ldm["first_stage_model.encoder.mid.attn_1.q.weight"].shape == (16, 16, 1, 1)  # as in LDM files
    assert ldm["first_stage_model.decoder.mid.attn_1.proj_out.weight"].shape == (16, 16, 1, 1)
    assert "first_stage_model.decoder.up.2.upsample.conv.weight" in ldm  # diffusers' up_blocks.0 is LDM's up.2
    assert "first_stage_model.decoder.up.0.upsample.conv.weight" not in ldm
    assert_same_weights(convert_ldm_vae_checkpoint(ldm, model.config), model.state_dict())


@pytest.mark.parametrize("prefix", ["cond_stage_model.transformer.", "conditioner.embedders.0.transformer."])
def test_clip_round_trips_under_sd1_and_sdxl_prefixes(prefix):
    model = clip_l()
    ldm = export.clip_to_ldm(model, prefix)
    assert prefix + "text_model.embeddings.position_embedding.weight" in ldm
    assert_same_weights(convert_ldm_clip_checkpoint(ldm), with_text_model_prefix(model.state_dict()))


@pytest.mark.parametrize("prefix", ["conditioner.embedders.1.model.", "conditioner.embedders.0.model."])
def test_open_clip_g_round_trips(prefix):
    model = clip_g()
    ldm = export.open_clip_to_ldm(model, prefix)
    assert ldm[prefix + "transformer.resblocks.1.attn.in_proj_weight"].shape == (3 * CLIP_G_WIDTH, CLIP_G_WIDTH)
    assert ldm[prefix + "text_projection"].shape == (CLIP_G_WIDTH, G_PROJECTION)  # transposed, as OpenCLIP has it
    assert_same_weights(convert_open_clip_checkpoint(model, ldm, prefix=prefix), model.state_dict())


def test_open_clip_sd2_round_trips_without_projection():
    model = clip_l()
    ldm = export.open_clip_to_ldm(model, "cond_stage_model.model.")
    assert "cond_stage_model.model.token_embedding.weight" in ldm and not any("projection" in k for k in ldm)
    converted = convert_open_clip_checkpoint(model, ldm, prefix="cond_stage_model.model.")
    assert_same_weights(converted, with_text_model_prefix(model.state_dict()))


# --- whole files, opened again through diffusers' loaders ---------------------------------------------------


def components(layout):
    if layout in ("sd1", "sd2"):  # sd2: the same tiny CLIPTextModel stands in for OpenCLIP-H
        return {"unet": unet("tiny"), "vae": vae(), "text_encoder": clip_l(), "tokenizer": None}
    if layout == "sdxl":
        return {"unet": unet("sdxl-like"), "vae": vae(), "text_encoder": clip_l(), "text_encoder_2": clip_g()}
    return {"unet": unet("refiner-like"), "vae": vae(), "text_encoder": None, "text_encoder_2": clip_g()}


def unet_output(model, layout):
    torch.manual_seed(0)
    latents = torch.randn(1, 4, 16, 16)  # (B, 4, H/8, W/8)
    context = torch.randn(1, 5, model.config.cross_attention_dim)  # (B, tokens, width)
    extra = None
    if layout.startswith("sdxl"):
        n_ids = 6 if layout == "sdxl" else 5  # size/crop/target size; the refiner has an aesthetic score instead
        extra = {"text_embeds": torch.randn(1, G_PROJECTION), "time_ids": torch.randn(1, n_ids)}
    with torch.no_grad():
        return model(latents, 10, context, added_cond_kwargs=extra).sample


@pytest.mark.parametrize("layout", ["sd1", "sd2", "sdxl", "sdxl-refiner"])
def test_saved_file_opens_in_diffusers_with_the_same_outputs(tmp_path, layout):
    parts = components(layout)
    folder = tmp_path / "config"
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if parts.get(name) is not None:
            parts[name].save_pretrained(folder / name)
    path = export.save_single_file(parts, layout, tmp_path / "model.safetensors", metadata={"labkit": "test"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config", "model.safetensors"]  # no temp file left

    load = dict(config=str(folder), local_files_only=True)
    unet2 = UNet2DConditionModel.from_single_file(str(path), subfolder="unet", **load)
    assert_same_weights(unet2.state_dict(), parts["unet"].state_dict())
    assert_close(unet_output(unet2, layout), unet_output(parts["unet"], layout))

    vae2 = AutoencoderKL.from_single_file(str(path), subfolder="vae", **load)
    assert_same_weights(vae2.state_dict(), parts["vae"].state_dict())
    image = torch.rand(1, 3, 32, 32) * 2 - 1  # (B, 3, H, W) in [-1, 1]
    with torch.no_grad():
        assert_close(vae2.encode(image).latent_dist.mean, parts["vae"].encode(image).latent_dist.mean)
        assert_close(vae2.decode(torch.ones(1, 4, 4, 4)).sample, parts["vae"].decode(torch.ones(1, 4, 4, 4)).sample)

    checkpoint = load_file(path)  # the text encoders go through the function diffusers' pipelines use
    ids = torch.tensor([[0, 5, 17, 900, 1]])
    for name in ("text_encoder", "text_encoder_2"):
        if parts.get(name) is None:
            continue
        model = create_diffusers_clip_model_from_ldm(type(parts[name]), checkpoint, subfolder=name, **load)
        assert_same_weights(model.state_dict(), parts[name].state_dict())
        with torch.no_grad():
            for got, want in zip(model(ids).to_tuple(), parts[name](ids).to_tuple()):
                assert_close(got, want)


# --- refusals ---------------------------------------------------------------------------------------------


def test_existing_file_is_kept_unless_overwrite(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"precious")
    parts = components("sd1")
    with pytest.raises(BadInput, match="overwrite=True"):
        export.save_single_file(parts, "sd1", path)
    assert path.read_bytes() == b"precious"
    export.save_single_file(parts, "sd1", path, overwrite=True)
    assert load_file(path).keys() == export.to_single_file(parts, "sd1").keys()


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    from labkit import files

    written = []

    def failing(tensor, entry):  # the disk fills up after two tensors
        if len(written) == 2:
            raise OSError("disk full")
        written.append(entry.key)
        return real(tensor, entry)

    real = files.tensor_bytes
    monkeypatch.setattr(files, "tensor_bytes", failing)
    with pytest.raises(OSError, match="disk full"):
        export.save_single_file(components("sd1"), "sd1", tmp_path / "model.safetensors")
    assert len(written) == 2 and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("layout", ["sd1", "sdxl"])
def test_the_streamed_file_holds_exactly_what_the_whole_state_dict_holds(layout, tmp_path):
    """Written tensor by tensor, the file is an ordinary safetensors file (read here by the safetensors library)
    with the same keys, shapes, dtypes and bits as the state dict built whole."""
    parts = components(layout)
    parts["text_encoder"].half()  # mixed dtypes in one file
    path = export.save_single_file(parts, layout, tmp_path / "model.safetensors", metadata={"a": "b"})
    whole, written = export.to_single_file(parts, layout), load_file(path)
    assert written.keys() == whole.keys()
    assert all(written[k].dtype == whole[k].dtype and torch.equal(written[k], whole[k]) for k in whole)
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        assert f.metadata() == {"a": "b"}


def test_tensors_are_unshared_copies():
    parts = components("sd1")
    tensors = export.to_single_file(parts, "sd1")
    weight = parts["unet"].conv_in.weight
    written = tensors[U + "input_blocks.0.0.weight"]
    assert torch.equal(written, weight) and written.data_ptr() != weight.data_ptr()
    assert all(t.is_contiguous() for t in tensors.values())


@pytest.mark.parametrize("layout, change, message", [
    ("sd3", {}, "Unknown layout"),
    ("sd1", {"vae": None}, "needs the components vae"),
    ("sdxl", {"text_encoder_2": "g"}, "non-SDXL UNet"),
    ("sdxl-refiner", {"unet": "refiner-like", "text_encoder_2": "g"}, "pass text_encoder=None"),
    ("sd1", {"text_encoder": "g"}, "open_clip_to_ldm"),
    ("sdxl", {"unet": "sdxl-like", "text_encoder_2": "l"}, "needs a text projection"),
])
def test_mismatched_components_are_refused(layout, change, message):
    parts = dict(components("sd1"), text_encoder_2=None)
    for name, value in change.items():
        text_encoders = {"g": clip_g, "l": clip_l}
        parts[name] = text_encoders[value]() if value in text_encoders else unet(value) if value else None
    with pytest.raises(BadInput, match=message):
        export.to_single_file(parts, layout)


def test_weights_without_an_ldm_place_are_refused_not_dropped():
    torch.manual_seed(0)
    model = UNet2DConditionModel(**dict(TINY, time_cond_proj_dim=8))  # an LCM-style extra layer
    with pytest.raises(BadInput, match="time_embedding.cond_proj.weight"):
        export.unet_to_ldm(model)


def test_written_safetensors_are_readable_by_others(tmp_path):
    # safetensors itself leaves 0600; labkit's checkpoints, LoRAs and toy parts get an ordinary saved file's mode
    import stat

    from labkit.files import FILE_MODE, save_safetensors, save_text
    from labkit.toy.train import save_part

    parts = components("sd1")
    written = [export.save_single_file(parts, "sd1", tmp_path / "model.safetensors"),
               save_safetensors({"x": torch.zeros(2)}, tmp_path / "plain.safetensors", {"a": "b"})]
    save_part(tmp_path / "part.safetensors", {"first_stage_model.x": torch.zeros(2)}, "first_stage_model.")
    written.append(tmp_path / "part.safetensors")
    written.append(save_text("{}\n", tmp_path / "table.json"))
    assert [stat.S_IMODE(p.stat().st_mode) for p in written] == [FILE_MODE] * 4 == [0o644] * 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors", "part.safetensors",
                                                         "plain.safetensors", "table.json"]  # no temp file left
