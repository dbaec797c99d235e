import pytest

import labkit


def test_clip_ids_of_known_strings():
    tok = labkit.tokenizer("sd1")
    # ids of OpenAI CLIP's vocabulary: <|startoftext|>=49406, a=320, photo=1125, of=539, cat=2368, <|endoftext|>=49407
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(tok) == 49408 and tok.model_max_length == 77
    assert tok.pad_token_id == 49407
    assert tok.decode(tok("Hello World").input_ids, skip_special_tokens=True).strip() == "hello world"


def test_sdxl_pair_second_pads_with_bang():
    first, second = labkit.tokenizer("sdxl")
    ids1 = first("a red circle", padding="max_length", max_length=8).input_ids
    ids2 = second("a red circle", padding="max_length", max_length=8).input_ids
    assert ids1[:5] == ids2[:5] == [49406, 320, 736, 7117, 49407]
    assert ids1[5:] == [49407] * 3 and ids2[5:] == [0] * 3  # "!" is token 0
    assert labkit.tokenizer("sdxl-refiner").pad_token_id == 0


def test_fresh_objects_each_call():
    assert labkit.tokenizer("toy") is not labkit.tokenizer("toy")


def test_unknown_family():
    with pytest.raises(labkit.UnsupportedFile, match="known families"):
        labkit.tokenizer("flux")
