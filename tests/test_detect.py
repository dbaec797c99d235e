"""labkit.detect: header reading, family detection and inspect() on synthetic files with real key names.

Files are written here by the safetensors spec (8-byte little-endian length, JSON header, data).
Tensors whose values do not matter are float16 zeros left as holes in a sparse file, so a checkpoint
with real shapes costs no disk and no memory.
"""

import builtins
import hashlib
import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from labkit.detect import Detection, FileInfo, LoraFileInfo, detect, inspect, read_header
from labkit.errors import UnsafeFile, UnsupportedFile

# ---------------------------------------------------------------------------------------------
# A spec-following writer
# ---------------------------------------------------------------------------------------------

class Blob(NamedTuple):
    """A tensor with explicit bytes; plain shape tuples stand for float16 zeros."""

    dtype: str
    shape: tuple
    raw: bytes


def scalar(value, dtype="F16"):
    raw = {"F16": struct.pack("<e", value), "F32": struct.pack("<f", value),
           "BF16": struct.pack("<f", value)[2:]}[dtype]
    return Blob(dtype, (), raw)


def write_safetensors(path, tensors, metadata=None):
    """Write `tensors` ({key: shape | Blob}) as a .safetensors file; zeros stay unwritten (sparse)."""
    header, blobs, offset = {}, [], 0
    for key, spec in tensors.items():
        blob = spec if isinstance(spec, Blob) else Blob("F16", tuple(spec), None)
        nbytes = int(np.prod(blob.shape)) * {"F16": 2, "BF16": 2, "F32": 4}[blob.dtype]
        header[key] = {"dtype": blob.dtype, "shape": list(blob.shape), "data_offsets": [offset, offset + nbytes]}
        blobs.append((offset, blob.raw))
        offset += nbytes
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        start = f.tell()
        for at, raw in blobs:
            if raw is not None:
                f.seek(start + at)
                f.write(raw)
        f.truncate(start + offset)
    return Path(path)


# ---------------------------------------------------------------------------------------------
# Real key names with the shapes detection reads
# ---------------------------------------------------------------------------------------------

UNET = "model.diffusion_model."
VAE_KEYS = {
    "first_stage_model.decoder.conv_in.weight": (512, 4, 3, 3),
    "first_stage_model.post_quant_conv.weight": (4, 4, 1, 1),
}


def sd1(in_channels=4, width=768):
    return {
        UNET + "input_blocks.0.0.weight": (320, in_channels, 3, 3),
        UNET + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, width),
        UNET + "middle_block.1.transformer_blocks.0.attn2.to_k.weight": (1280, width),
        UNET + "output_blocks.11.0.skip_connection.weight": (320, 640, 1, 1),
        "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight": (77, 768),
        **VAE_KEYS,
    }


def sd2(in_channels=4):
    return {
        UNET + "input_blocks.0.0.weight": (320, in_channels, 3, 3),
        UNET + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 1024),
        "cond_stage_model.model.positional_embedding": (77, 1024),
        "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight": (3072, 1024),
        **VAE_KEYS,
    }


def sdxl(in_channels=4, width=2048):
    return {
        UNET + "input_blocks.0.0.weight": (320, in_channels, 3, 3),
        UNET + "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (640, width),
        UNET + "label_emb.0.0.weight": (1280, 2816),
        "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight": (77, 768),
        "conditioner.embedders.1.model.positional_embedding": (77, 1280),
        "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias": (1280,),
        **VAE_KEYS,
    }


def refiner(width=1280):
    return {
        UNET + "input_blocks.0.0.weight": (384, 4, 3, 3),
        UNET + "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (768, width),
        UNET + "label_emb.0.0.weight": (1536, 2560),
        "conditioner.embedders.0.model.positional_embedding": (77, 1280),
        "conditioner.embedders.0.model.text_projection": (1280, 1280),
        **VAE_KEYS,
    }


def toy():  # labkit's embedded SD1-layout model: context width 64
    return {
        UNET + "input_blocks.0.0.weight": (32, 4, 3, 3),
        UNET + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (32, 64),
        "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight": (77, 64),
    }


def toy_xl():
    return {
        UNET + "input_blocks.0.0.weight": (32, 4, 3, 3),
        UNET + "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (64, 160),
        "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight": (77, 64),
        "conditioner.embedders.1.model.positional_embedding": (77, 96),
    }


def toy_xl_refiner():
    return {
        UNET + "input_blocks.0.0.weight": (48, 4, 3, 3),
        UNET + "middle_block.1.transformer_blocks.0.attn2.to_k.weight": (64, 96),
        "conditioner.embedders.0.model.positional_embedding": (77, 96),
    }


def pair(module, rank, width, out, alpha=None):
    """One kohya LoRA module: down (rank, width), up (out, rank), optional alpha scalar."""
    keys = {f"{module}.lora_down.weight": (rank, width), f"{module}.lora_up.weight": (out, rank)}
    if alpha is not None:
        keys[f"{module}.alpha"] = alpha
    return keys


KOHYA_SD1 = {
    **pair("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k", 8, 768, 320, scalar(4.0)),
    **pair("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q", 8, 320, 320, scalar(4.0)),
    "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": (8, 320, 1, 1),  # 1x1 conv: still plain LoRA
    "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": (320, 8, 1, 1),
    "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": scalar(4.0),
    **pair("lora_te_text_model_encoder_layers_0_self_attn_k_proj", 8, 768, 768, scalar(4.0)),
}
KOHYA_SDXL = {
    **pair("lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k", 16, 2048, 640, scalar(8.0, "BF16")),
    **pair("lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_v", 16, 2048, 640, scalar(8.0, "BF16")),
    **pair("lora_te1_text_model_encoder_layers_0_self_attn_q_proj", 16, 768, 768, scalar(8.0, "BF16")),
    **pair("lora_te2_text_model_encoder_layers_0_self_attn_q_proj", 16, 1280, 1280, scalar(8.0, "BF16")),
}
LOCON_SD1 = {
    **pair("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k", 8, 768, 320, scalar(1.0)),
    "lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight": (8, 320, 3, 3),
    "lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight": (320, 8, 1, 1),
    "lora_unet_down_blocks_0_resnets_0_conv1.alpha": scalar(1.0),
}
LOHA_SD1 = {
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.hada_w1_a": (320, 4),
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.hada_w1_b": (4, 768),
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.hada_w2_a": (320, 4),
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.hada_w2_b": (4, 768),
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.alpha": scalar(2.0, "F32"),
}
LOKR_SDXL = {  # kron((8, 16), (80, 4) @ (4, 128)) = (640, 2048)
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lokr_w1": (8, 16),
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lokr_w2_a": (80, 4),
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lokr_w2_b": (4, 128),
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.alpha": scalar(4.0),
}
PEFT_SDXL = {
    "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": (4, 2048),
    "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_B.weight": (640, 4),
    "text_encoder.text_model.encoder.layers.0.self_attn.k_proj.lora_A.weight": (4, 768),
    "text_encoder.text_model.encoder.layers.0.self_attn.k_proj.lora_B.weight": (768, 4),
    "text_encoder_2.text_model.encoder.layers.0.self_attn.k_proj.lora_A.weight": (4, 1280),
    "text_encoder_2.text_model.encoder.layers.0.self_attn.k_proj.lora_B.weight": (1280, 4),
}
DIFFUSERS_SD1 = {  # the older attention-processor format
    "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor.to_k_lora.down.weight": (4, 768),
    "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor.to_k_lora.up.weight": (320, 4),
    "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor.to_q_lora.down.weight": (4, 320),
    "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor.to_q_lora.up.weight": (320, 4),
}
VAE = {
    "encoder.conv_in.weight": (128, 3, 3, 3),
    "decoder.conv_in.weight": (512, 4, 3, 3),
    "quant_conv.weight": (8, 8, 1, 1),
    "post_quant_conv.weight": (4, 4, 1, 1),
}
CONTROLNET_SD1 = {
    "control_model.input_hint_block.0.weight": (16, 3, 3, 3),
    "control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 768),
    "control_model.zero_convs.0.0.weight": (320, 320, 1, 1),
}

EPS, V = "epsilon", "v_prediction"

# name -> (tensors, metadata, expected kind, family, variant, prediction)
FILES = {
    "sd1": (sd1(), None, "checkpoint", "sd1", None, EPS),
    "sd1-inpaint": (sd1(in_channels=9), None, "checkpoint", "sd1", "inpaint", EPS),
    "sd1-pix2pix": (sd1(in_channels=8), None, "checkpoint", "sd1", "instruct-pix2pix", EPS),
    "sd2": (sd2(), None, "checkpoint", "sd2", None, None),
    "sd2-v": (sd2(), {"modelspec.prediction_type": "v"}, "checkpoint", "sd2", None, V),
    "sd2-inpaint": (sd2(in_channels=9), {"modelspec.prediction_type": "epsilon"}, "checkpoint", "sd2", "inpaint", EPS),
    "sdxl": (sdxl(), None, "checkpoint", "sdxl", None, EPS),
    "sdxl-inpaint": (sdxl(in_channels=9), None, "checkpoint", "sdxl", "inpaint", EPS),
    "sdxl-vpred-key": ({**sdxl(), "v_pred": (), "ztsnr": ()}, None, "checkpoint", "sdxl", None, V),
    "sdxl-refiner": (refiner(), None, "checkpoint", "sdxl-refiner", None, EPS),
    "toy": (toy(), None, "checkpoint", "toy", None, EPS),
    "toy-xl": (toy_xl(), None, "checkpoint", "toy-xl", None, EPS),
    "toy-xl-refiner": (toy_xl_refiner(), None, "checkpoint", "toy-xl-refiner", None, EPS),
    "sd1-layout-unknown-width": (sd1(width=1024), None, "checkpoint", None, None, None),
    "sdxl-layout-sd1-width": (sdxl(width=768), None, "checkpoint", None, None, None),
    "unet-only": ({k: v for k, v in sd1().items() if k.startswith(UNET)}, None, "checkpoint", None, None, None),
    "vae": (VAE, None, "vae", None, None, None),
    "vae-sdxl-by-metadata": (VAE, {"modelspec.architecture": "stable-diffusion-xl-v1-base"}, "vae", "sdxl", None, None),
    "lora-kohya-sd1": (KOHYA_SD1, None, "lora", "sd1", None, None),
    "lora-kohya-sdxl": (KOHYA_SDXL, None, "lora", "sdxl", None, None),
    "lora-locon": (LOCON_SD1, None, "lora", "sd1", None, None),
    "lora-loha": (LOHA_SD1, None, "lora", "sd1", None, None),
    "lora-lokr": (LOKR_SDXL, None, "lora", "sdxl", None, None),
    "lora-peft": (PEFT_SDXL, None, "lora", "sdxl", None, None),
    "lora-diffusers": (DIFFUSERS_SD1, None, "lora", "sd1", None, None),
    "embedding-sd1": ({"emb_params": (2, 768)}, None, "embedding", "sd1", None, None),
    "embedding-sdxl": ({"clip_l": (2, 768), "clip_g": (2, 1280)}, None, "embedding", "sdxl", None, None),
    "controlnet-sd1": (CONTROLNET_SD1, None, "controlnet", "sd1", None, None),
    "unknown": ({"fc.weight": (10, 10), "fc.bias": (10,)}, None, "unknown", None, None, None),
}


def shapes_of(tensors):
    return {key: (spec.shape if isinstance(spec, Blob) else spec) for key, spec in tensors.items()}


# ---------------------------------------------------------------------------------------------
# detect(): pure, on shapes alone
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", FILES)
def test_detect_is_a_pure_function_of_shapes(name):
    tensors, metadata, kind, family, variant, prediction = FILES[name]
    found = detect(shapes_of(tensors), metadata)
    assert (found.kind, found.family, found.variant, found.prediction) == (kind, family, variant, prediction)


@pytest.mark.parametrize(
    "shapes, family",
    [
        ({"emb_params": (1, 1024)}, "sd2"),
        ({"emb_params": (1, 64)}, "toy"),
        ({"string_to_param.*": (3, 768)}, "sd1"),
        ({"emb_params": (1, 4096)}, None),
    ],
)
def test_embedding_family_from_vector_width(shapes, family):
    assert detect(shapes) == Detection("embedding", family)


def test_detect_diffusers_controlnet_sdxl():
    shapes = {
        "controlnet_cond_embedding.conv_in.weight": (16, 3, 3, 3),
        "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight": (640, 2048),
    }
    assert detect(shapes) == Detection("controlnet", "sdxl")


def test_metadata_prediction_beats_the_family_default():
    assert detect(shapes_of(sdxl()), {"modelspec.prediction_type": "v"}).prediction == V
    assert detect(shapes_of(sd2()), {"prediction_type": "v_prediction"}).prediction == V
    assert detect(shapes_of(sd2()), {"prediction_type": "something else"}).prediction is None


def test_vae_needs_vae_markers_not_just_an_encoder():
    t5_like = {"encoder.block.0.layer.0.SelfAttention.q.weight": (512, 512), "encoder.final_layer_norm.weight": (512,)}
    assert detect(t5_like).kind == "unknown"
    prefixed = {"first_stage_model." + key: shape for key, shape in VAE.items()}
    assert detect(prefixed).kind == "vae"


def test_lora_details_kohya_sd1():
    lora = detect(shapes_of(KOHYA_SD1)).lora
    assert lora == LoraFileInfo(format="kohya", rank=8, has_alpha=True, targets=("unet", "te1"), n_modules=4)


def test_lora_details_per_format():
    assert detect(shapes_of(KOHYA_SDXL)).lora.targets == ("unet", "te1", "te2")
    assert detect(shapes_of(KOHYA_SDXL)).lora.rank == 16
    assert detect(shapes_of(LOCON_SD1)).lora.format == "locon"
    assert (detect(shapes_of(LOHA_SD1)).lora.format, detect(shapes_of(LOHA_SD1)).lora.rank) == ("loha", 4)
    assert (detect(shapes_of(LOKR_SDXL)).lora.format, detect(shapes_of(LOKR_SDXL)).lora.rank) == ("lokr", 4)
    peft = detect(shapes_of(PEFT_SDXL)).lora
    assert (peft.format, peft.rank, peft.has_alpha, peft.targets) == ("peft", 4, False, ("unet", "te1", "te2"))
    diffusers = detect(shapes_of(DIFFUSERS_SD1)).lora
    assert (diffusers.format, diffusers.targets, diffusers.n_modules) == ("diffusers", ("unet",), 2)


def test_lora_rank_is_the_most_common():
    shapes = {**pair("lora_unet_a_attn2_to_k", 32, 768, 320), **pair("lora_unet_b_attn1_to_q", 32, 320, 320),
              **pair("lora_unet_c_attn1_to_k", 4, 320, 320)}
    assert detect(shapes).lora.rank == 32


@pytest.mark.parametrize(
    "shapes, family",
    [
        (pair("lora_te2_text_model_encoder_layers_0_self_attn_k_proj", 8, 1280, 1280), "sdxl"),  # te only
        (pair("lora_te_text_model_encoder_layers_0_self_attn_v_proj", 8, 1024, 1024), "sd2"),
        (pair("lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k", 8, 1024, 640), "sd2"),
        (pair("lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k", 4, 160, 64), "toy-xl"),
        (pair("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k", 4, 64, 32), "toy"),
    ],
)
def test_lora_family_from_tensor_widths(shapes, family):
    assert detect(shapes).family == family


@pytest.mark.parametrize(
    "metadata, family",
    [
        ({"ss_base_model_version": "sdxl_base_v1-0", "ss_v2": "False"}, "sdxl"),
        ({"ss_base_model_version": "sd_v2_v"}, "sd2"),
        ({"ss_v2": "True"}, "sd2"),
        ({"ss_v2": "False"}, "sd1"),
        ({"modelspec.architecture": "stable-diffusion-v1/lora"}, "sd1"),
        ({}, None),
    ],
)
def test_lora_family_falls_back_to_metadata(metadata, family):
    conv_only = {"lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight": (8, 320, 3, 3),
                 "lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight": (320, 8, 1, 1)}
    assert detect(conv_only, metadata).family == family


def test_plain_text_encoder_beside_text_encoder_2_is_sdxl_te1():
    shapes = {  # only the first encoder has a probe-able q/k/v layer, and it is 768 wide like SD1's
        "text_encoder.text_model.encoder.layers.0.self_attn.k_proj.lora_A.weight": (4, 768),
        "text_encoder.text_model.encoder.layers.0.self_attn.k_proj.lora_B.weight": (768, 4),
        "text_encoder_2.text_model.encoder.layers.0.mlp.fc1.lora_A.weight": (4, 1280),
        "text_encoder_2.text_model.encoder.layers.0.mlp.fc1.lora_B.weight": (5120, 4),
    }
    found = detect(shapes)
    assert (found.family, found.lora.targets) == ("sdxl", ("te1", "te2"))


def test_lora_of_the_second_text_encoder_only_targets_te2():
    shapes = pair("lora_te2_text_model_encoder_layers_0_self_attn_k_proj", 8, 1280, 1280)
    assert detect(shapes).lora.targets == ("te2",)


def test_lora_widths_beat_contradicting_metadata():
    assert detect(shapes_of(KOHYA_SD1), {"ss_base_model_version": "sdxl_base_v1-0"}).family == "sd1"


def test_alpha_alone_is_not_a_lora():
    assert detect({"blocks.0.alpha": ()}).kind == "unknown"


# ---------------------------------------------------------------------------------------------
# read_header(): the format, and errors that teach
# ---------------------------------------------------------------------------------------------

def test_read_header_agrees_with_the_safetensors_library(tmp_path):
    path = tmp_path / "lib.safetensors"
    tensors = {"a.weight": np.zeros((3, 5), np.float16), "b.bias": np.arange(7, dtype=np.float32)}
    save_file(tensors, str(path), metadata={"modelspec.title": "x"})
    header, metadata = read_header(path)
    assert metadata == {"modelspec.title": "x"}
    with safe_open(str(path), framework="numpy") as f:
        assert set(header) == set(f.keys())
        for key in f.keys():
            assert list(header[key]["shape"]) == list(f.get_slice(key).get_shape())
    assert header["b.bias"]["dtype"] == "F32"


def test_the_test_writer_makes_files_the_library_reads(tmp_path):
    path = write_safetensors(tmp_path / "w.safetensors", {"x": (2, 3), "alpha": scalar(4.0, "F32")}, {"k": "v"})
    with safe_open(str(path), framework="numpy") as f:
        assert f.metadata() == {"k": "v"}
        assert f.get_tensor("x").shape == (2, 3) and not f.get_tensor("x").any()
        assert float(f.get_tensor("alpha")) == 4.0


def test_missing_file_names_the_path_and_the_builtins(tmp_path):
    path = tmp_path / "juggernautXL.safetensors"
    with pytest.raises(UnsupportedFile) as err:
        read_header(path)
    assert str(path) in str(err.value) and "labkit.models()" in str(err.value)


def test_a_folder_is_not_a_file(tmp_path):
    with pytest.raises(UnsupportedFile, match="folder"):
        inspect(tmp_path)


@pytest.mark.parametrize(
    "content",
    [
        b"hello, this is a plain text file and not a model at all\n",
        b"\x89PNG\r\n\x1a\n" + bytes(64),
        b"abc",
        struct.pack("<Q", 1) + b"{" + bytes(64),  # a header too short to be JSON
        struct.pack("<Q", 16) + b"[" + bytes(64),  # not the "{" the spec requires
    ],
)
def test_not_a_safetensors_file(tmp_path, content):
    path = tmp_path / "x.safetensors"
    path.write_bytes(content)
    with pytest.raises(UnsupportedFile, match="not a .safetensors file"):
        read_header(path)


def _valid_bytes(tmp_path):
    return write_safetensors(tmp_path / "ok.safetensors", {"w": (4, 4), "b": (4,)}).read_bytes()


def test_truncated_header(tmp_path):
    path = tmp_path / "cut.safetensors"
    path.write_bytes(_valid_bytes(tmp_path)[:20])  # the length field promises more than follows
    with pytest.raises(UnsupportedFile, match="truncated") as err:
        read_header(path)
    assert "Download it again" in str(err.value)


def test_corrupt_json_header(tmp_path):
    text = b'{"w": {"dtype": "F16", "shape": [4, 4], "data_offsets": [0, 3'
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(32))
    with pytest.raises(UnsupportedFile, match="does not parse"):
        read_header(path)


def test_offsets_past_the_end_of_the_file(tmp_path):
    path = tmp_path / "short.safetensors"
    path.write_bytes(_valid_bytes(tmp_path)[:-4])  # header intact, the last tensor's bytes cut
    with pytest.raises(UnsupportedFile, match="past the file's end"):
        read_header(path)


@pytest.mark.parametrize(
    "entry, why",
    [
        ({"shape": [2], "data_offsets": [0, 4]}, "lacks a dtype"),
        ({"dtype": "F16", "shape": [2], "data_offsets": [4, 0]}, "data_offsets"),
        ({"dtype": "F16", "shape": [3], "data_offsets": [0, 4]}, "4 bytes for shape"),
    ],
)
def test_malformed_entries(tmp_path, entry, why):
    text = json.dumps({"x": entry}).encode()
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(8))
    with pytest.raises(UnsupportedFile, match=why):
        read_header(path)


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pth", ".bin", ".CKPT"])
def test_pickle_extensions_are_unsafe_whatever_they_hold(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(_valid_bytes(tmp_path))  # even a valid safetensors body is refused by its name
    with pytest.raises(UnsafeFile) as err:
        read_header(path)
    message = str(err.value)
    assert "arbitrary code" in message and ".safetensors" in message
    assert "allow_pickle=True" in message and "weights_only=True" in message


def test_a_header_length_that_looks_like_pickle_magic_is_still_safetensors(tmp_path):
    # 640 = 0x280 is written b"\x80\x02...": the bytes a protocol-2 pickle starts with
    text = json.dumps({"w": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}}).encode().ljust(640)
    path = tmp_path / "x.safetensors"
    path.write_bytes(struct.pack("<Q", 640) + text + bytes(4))
    assert path.read_bytes()[:2] == b"\x80\x02"
    assert read_header(path)[0]["w"]["shape"] == [2]


@pytest.mark.parametrize("magic", [b"PK\x03\x04\x14\x00\x00\x00\x08\x00", b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.",
                                   b"\x80\x04\x95"])
def test_pickle_content_is_unsafe_under_any_name(tmp_path, magic):
    path = tmp_path / "renamed.safetensors"
    path.write_bytes(magic + bytes(200))
    with pytest.raises(UnsafeFile, match="allow_pickle=True"):
        inspect(path)


def test_unsafe_and_unsupported_are_labkit_errors():
    from labkit.errors import LabkitError

    assert issubclass(UnsafeFile, LabkitError) and issubclass(UnsupportedFile, LabkitError)


# ---------------------------------------------------------------------------------------------
# inspect(): files on disk
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", FILES)
def test_inspect_detects_every_kind_from_a_file(tmp_path, name):
    tensors, metadata, kind, family, variant, prediction = FILES[name]
    info = inspect(write_safetensors(tmp_path / f"{name}.safetensors", tensors, metadata))
    assert (info.kind, info.family, info.variant, info.prediction) == (kind, family, variant, prediction)
    assert info.n_tensors == len(tensors)
    assert info.n_params == sum(int(np.prod(shape)) for shape in shapes_of(tensors).values())
    assert info.metadata == (metadata or {})


def test_inspect_sdxl_numbers_and_summary(tmp_path):
    path = write_safetensors(tmp_path / "xl.safetensors", sdxl(in_channels=9))
    info = inspect(path)
    assert info.dtype == "float16"
    assert info.file_size == path.stat().st_size
    assert info.summary().startswith("checkpoint · sdxl · inpaint · fp16 · 5.1 M params · ")
    assert repr(info).startswith("<FileInfo xl.safetensors: checkpoint · sdxl")


def test_dtype_is_the_one_holding_most_parameters(tmp_path):
    tensors = {"big": Blob("BF16", (100,), bytes(200)), "small": Blob("F32", (10,), bytes(40))}
    assert inspect(write_safetensors(tmp_path / "d.safetensors", tensors)).dtype == "bfloat16"


def test_summary_format():
    info = FileInfo(path=Path("x.safetensors"), kind="checkpoint", family="sdxl", variant="inpaint",
                    prediction="epsilon", dtype="float16", n_params=2_600_000_000, n_tensors=1,
                    file_size=6_900_000_000, metadata={})
    assert info.summary() == "checkpoint · sdxl · inpaint · fp16 · 2.6 G params · 6.9 GB"
    sd2v = FileInfo(path=Path("y.safetensors"), kind="checkpoint", family=None, variant=None,
                    prediction="v_prediction", dtype="float32", n_params=999, n_tensors=1, file_size=512, metadata={})
    assert sd2v.summary() == "checkpoint · unknown family · v-pred · fp32 · 999 params · 512 B"


@pytest.mark.parametrize("tensors, alpha", [(KOHYA_SD1, 4.0), (KOHYA_SDXL, 8.0), (LOHA_SD1, 2.0)])
def test_inspect_reads_lora_alpha_values(tmp_path, tensors, alpha):
    info = inspect(write_safetensors(tmp_path / "l.safetensors", tensors))
    assert info.lora.alpha == alpha
    assert f"alpha {alpha:g}" in info.summary()


def test_inspect_lora_summary(tmp_path):
    info = inspect(write_safetensors(tmp_path / "l.safetensors", KOHYA_SDXL))
    assert info.summary().startswith("lora · sdxl · kohya · rank 16 · alpha 8 · unet+te1+te2 · fp16 · ")


def test_peft_lora_has_no_alpha_value(tmp_path):
    info = inspect(write_safetensors(tmp_path / "p.safetensors", PEFT_SDXL))
    assert info.lora.alpha is None and info.lora.has_alpha is False


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def test_hashes_by_kind(tmp_path):
    ckpt = write_safetensors(tmp_path / "c.safetensors", toy())
    lora = write_safetensors(tmp_path / "l.safetensors", KOHYA_SD1, {"ss_output_name": "l"})
    emb = write_safetensors(tmp_path / "e.safetensors", {"emb_params": (2, 768)})
    assert inspect(ckpt).short_hash == _sha(ckpt.read_bytes())[:10]
    assert inspect(ckpt).sha256 == _sha(ckpt.read_bytes())
    data = lora.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    assert inspect(lora).short_hash == _sha(data[8 + header_len:])[:12]
    assert inspect(emb).short_hash == _sha(emb.read_bytes())[:12]


@pytest.fixture
def bytes_read(monkeypatch):
    """Count the bytes every file opened during the test hands back."""
    log = []
    real_open = builtins.open

    class Counting:
        def __init__(self, f):
            self._f = f

        def read(self, *args):
            data = self._f.read(*args)
            log.append(len(data))
            return data

        def readinto(self, buffer):
            n = self._f.readinto(buffer)
            log.append(n or 0)
            return n

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

    monkeypatch.setattr(builtins, "open", lambda *a, **k: Counting(real_open(*a, **k)))
    return log


def test_inspect_reads_only_the_header_of_a_200mb_file(tmp_path, bytes_read):
    tensors = {**sdxl(), UNET + "output_blocks.0.0.in_layers.2.weight": (1280, 2560, 3, 3),  # 59 MB each
               UNET + "output_blocks.1.0.in_layers.2.weight": (1280, 2560, 3, 3),
               UNET + "output_blocks.2.0.in_layers.2.weight": (1280, 2560, 3, 3)}
    path = write_safetensors(tmp_path / "big.safetensors", tensors)
    assert path.stat().st_size > 180_000_000
    with open(path, "rb") as f:
        header_len = struct.unpack("<Q", f.read(8))[0]
    bytes_read.clear()
    info = inspect(path)
    assert info.family == "sdxl" and info.n_params > 90_000_000
    assert sum(bytes_read) == 8 + header_len  # the length field and the JSON header, no tensor data


def test_inspect_of_a_lora_reads_header_plus_alpha_scalars(tmp_path, bytes_read):
    path = write_safetensors(tmp_path / "l.safetensors", KOHYA_SD1)
    with open(path, "rb") as f:
        header_len = struct.unpack("<Q", f.read(8))[0]
    bytes_read.clear()
    info = inspect(path)
    assert info.lora.alpha == 4.0
    assert sum(bytes_read) == 8 + header_len + 4 * 2  # four float16 alpha scalars


def test_import_does_not_load_torch():
    code = ("import sys, labkit.detect, labkit.hashes; "
            "heavy = [m for m in ('torch', 'diffusers', 'numpy', 'safetensors') if m in sys.modules]; "
            "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_read_tensors_equals_safetensors_load_file(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    from labkit.header import read_tensors

    tensors = {"f32": torch.randn(3, 4), "f16": torch.randn(5).half(), "bf16": torch.randn(2, 2).bfloat16(),
               "i64": torch.arange(7), "flag": torch.tensor([True, False]), "empty": torch.zeros(0, 3),
               "scalar": torch.tensor(2.5)}
    save_file(tensors, str(tmp_path / "t.safetensors"))
    ours, theirs = read_tensors(tmp_path / "t.safetensors"), load_file(str(tmp_path / "t.safetensors"))
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert ours[key].dtype == theirs[key].dtype and ours[key].shape == theirs[key].shape
        assert torch.equal(ours[key], theirs[key])
