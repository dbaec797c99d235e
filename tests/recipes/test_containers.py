"""labkit.recipes.containers: EXIF UserComment as other writers encode it, the XMP packet, Pillow's options."""

import pytest

from labkit.errors import BadInput
from labkit.recipes.containers import (XMP_RECIPE, decode_user_comment, image_options, with_xmp_recipe, xmp_packet,
                                       xmp_recipe)


def test_user_comment_decoding_of_other_writers():
    assert decode_user_comment(b"UNICODE\0" + "héllo, 世界".encode("utf-16-le")) == "héllo, 世界"
    assert decode_user_comment(b"UNICODE\0\xfe\xff" + "ab".encode("utf-16-be")) == "ab"
    assert decode_user_comment(b"ASCII\0\0\0Steps: 3") == "Steps: 3"
    assert decode_user_comment("plain text\0") == "plain text"


def test_xmp_carries_the_recipe_and_only_png_takes_extra_chunks():
    recipe = '{"format": "labkit-recipe/1", "params": {"prompt": "a <b> & c"}}'
    assert xmp_recipe(xmp_packet(recipe)) == recipe and xmp_recipe(xmp_packet()) is None
    assert with_xmp_recipe({"xmp": xmp_packet(recipe)})[XMP_RECIPE] == recipe
    assert image_options("PNG", "text", "{}", {"labkit.grid": "{}"})["pnginfo"]
    with pytest.raises(BadInput, match="only in PNG"):
        image_options("JPEG", "text", "{}", {"labkit.grid": "{}"})
