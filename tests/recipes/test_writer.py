"""labkit.recipes.writer: real results round-tripping through PNG, JPEG and WebP, labkit's JSON chunk, and files
written whole, never over another file unless asked."""

import json
import os

import pytest
from PIL import Image

from labkit.errors import BadInput
from labkit.params import Params
from labkit.recipes import infotext, parse_a1111, read_params, read_recipe, recipe_from_chunks, save_image
from labkit.recipes.containers import (AI_SOURCE_TYPE, EXIF_IFD, EXIF_SOFTWARE, USER_COMMENT, decode_user_comment,
                                       software)
from tests.helpers.lora_files import kohya_modules, lora_parts, write

VERSION = software()  # "labkit x.y.z"
STEPS = {"steps": 2, "sampler": "Euler"}


def xmp_description(image):
    """The rdf:Description element of an image's XMP packet, parsed as XML."""
    import xml.etree.ElementTree as ET

    packet = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    packet = packet.decode() if isinstance(packet, bytes) else packet
    return ET.fromstring(packet.strip("\x00 ")).find(f"{{{RDF}}}RDF/{{{RDF}}}Description")


RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
SOURCE_TYPE = "{http://iptc.org/std/Iptc4xmpExt/2008-02-29/}DigitalSourceType"
CREATOR_TOOL = "{http://ns.adobe.com/xap/1.0/}CreatorTool"


# ---- writing files: real results round trip exactly ----------------------------------------------------------------
def square_mask(size=64):
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, (16, 16, 48, 48))
    return mask


@pytest.fixture(scope="module")
def results(sd_lab, xl_lab, refiner_lab, tmp_path_factory):
    """One real Result per mode: txt2img (batch of 2, with a LoRA tag), img2img, inpaint, SDXL with a refiner
    (cfg 1 skips the unconditional pass: these tests are about recipes, not pictures)."""
    folder = tmp_path_factory.mktemp("loras")
    write(folder / "outline.safetensors", kohya_modules(sd_lab, "kohya"), lora_parts)
    sd_lab.loras.search_paths = [folder]
    base = sd_lab.txt2img("a red circle <lora:outline:0.7>", negative_prompt="blurry", seed=11, batch_size=2,
                          cfg=6.5, **STEPS)
    return {
        "txt2img": base,
        "img2img": sd_lab.img2img(base.image, "a red circle, hat", strength=0.5, seed=12, clip_skip=2, cfg=1.0,
                                  emphasis="No norm", **STEPS),
        "inpaint": sd_lab.inpaint(base.image, square_mask(), "a blue square", seed=13, only_masked=True, padding=8,
                                  mask_blur=2, cfg=1.0, **STEPS),
        "refiner": xl_lab.txt2img("a blue star", seed=14, switch_at=0.5, refiner=refiner_lab, cfg=1.0, **STEPS),
    }


@pytest.mark.parametrize("which", ["txt2img", "img2img", "inpaint", "refiner"])
def test_result_save_round_trips_params_exactly(results, which, tmp_path):
    r = results[which]
    path = r.save(tmp_path / f"{which}.png")
    recipe = read_recipe(path)
    assert read_params(path) == r.params and recipe.tool == "labkit" and recipe.mode == r.mode
    with Image.open(path) as image:
        assert image.text["parameters"] == infotext(r.params, r.model, r.mode)  # the ModelRecord has the LoRAs
        assert ("Lora hashes: \"outline: " in image.text["parameters"]) == (which == "txt2img")
        assert xmp_description(image).get(SOURCE_TYPE) == AI_SOURCE_TYPE
    a1111 = parse_a1111(infotext(r.params, r.model, r.mode))  # what A1111 would read from the same file
    assert (a1111.params.seed, a1111.params.steps, a1111.params.prompt) == (r.params.seed, 2, r.params.prompt)
    assert a1111.mode == {"refiner": "txt2img"}.get(which, which)


@pytest.mark.parametrize("suffix", [".jpg", ".webp"])
def test_jpeg_and_webp_carry_infotext_in_exif_and_the_recipe_in_xmp(results, suffix, tmp_path):
    r = results["inpaint"]
    path = r.save(tmp_path / f"out{suffix}")
    text = infotext(r.params, r.model, r.mode)
    assert b"UNICODE\x00" + text.encode("utf-16-be") in path.read_bytes()  # piexif/A1111's exact encoding
    with Image.open(path) as image:
        exif = image.getexif()
        assert decode_user_comment(exif.get_ifd(EXIF_IFD)[USER_COMMENT]) == text
        assert exif[EXIF_SOFTWARE] == VERSION
        description = xmp_description(image)
        assert description.get(SOURCE_TYPE) == AI_SOURCE_TYPE and description.get(CREATOR_TOOL) == VERSION
    assert read_params(path) == r.params
    without_xmp = recipe_from_chunks({"UserComment": text})  # an A1111-style reader: the infotext alone
    assert without_xmp.params.prompt == r.params.prompt and without_xmp.params.only_masked is True



def test_json_chunk_records_scheduler_versions_and_loras(sd_lab, tmp_path):
    p = Params(prompt="x <lora:outline:0.7>", seed=1, width=64, height=64, sampler="Euler")
    extra = {"scheduler": sd_lab.pipe.scheduler, "dtype": "torch.float16", "device": "cuda:0",
             "loras": [{"name": "outline", "weight": 0.7, "hash": "0123456789ab"}]}
    path = save_image(Image.new("RGB", (64, 64)), tmp_path / "x.png", p, {"name": "toy"}, extra=extra)
    with Image.open(path) as image:
        data = json.loads(image.text["labkit"])
        assert 'Lora hashes: "outline: 0123456789ab"' in image.text["parameters"]
    assert data["scheduler"]["class"] == type(sd_lab.pipe.scheduler).__name__
    assert data["scheduler"]["config"]["num_train_timesteps"] == sd_lab.pipe.scheduler.config.num_train_timesteps
    assert (data["dtype"], data["device"], data["noise"]) == ("float16", "cuda", "a1111-cpu")
    assert set(data["libraries"]) == {"labkit", "diffusers", "torch", "transformers"}
    assert data["libraries"]["diffusers"]  # installed here
    assert read_recipe(path).loras == extra["loras"]


def test_the_model_record_is_written_whole_and_alone(results, tmp_path):
    r = results["txt2img"]
    with Image.open(r.save(tmp_path / "x.png")) as image:
        data = json.loads(image.text["labkit"])
    assert data["model"]["loras"] == [lora.to_dict() for lora in r.model.loras] and r.model.loras[0].stage == "base"
    assert data["loras"] == [{"name": "outline", "weight": 0.7, "hash": r.model.loras[0].hash}]
    with pytest.raises(BadInput, match="ModelRecord carries its own"):
        infotext(r.params, r.model, r.mode, extra={"loras": []})


def test_never_overwrites_unless_asked_and_leaves_no_temporary_files(results, tmp_path):
    path = results["txt2img"].save(tmp_path / "a.png")
    before = path.read_bytes()
    with pytest.raises(BadInput, match="a.png already exists.*overwrite=True"):
        results["img2img"].save(path)
    assert path.read_bytes() == before
    results["img2img"].save(path, overwrite=True)
    assert read_params(path) == results["img2img"].params
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_bad_destinations(tmp_path):
    image, p = Image.new("RGB", (8, 8)), Params(prompt="x")
    with pytest.raises(BadInput, match=r"\.gif.*\.png"):
        save_image(image, tmp_path / "x.gif", p)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(BadInput, match=f"folder {blocker}"):  # fails even for root
        save_image(image, blocker / "x.png", p)
    assert blocker.read_text() == "not a folder"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into read-only folders; the path-under-a-file case covers unwritable folders")
def test_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(BadInput, match="ro"):
            save_image(Image.new("RGB", (8, 8)), folder / "x.png", Params(prompt="x"))
    finally:
        folder.chmod(0o700)

