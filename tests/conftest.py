"""Shared fixtures: tiny real components (labkit's toy configs, seeded random weights), built once per session."""

import os

import pytest

from tests.helpers.labs import make_lab

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def sd_lab():
    """An SD1-layout Lab with random toy-size weights."""
    return make_lab("toy")


@pytest.fixture(scope="session")
def xl_lab():
    """An SDXL-layout Lab with random toy-size weights."""
    return make_lab("toy-xl")


@pytest.fixture(scope="session")
def refiner_lab():
    """An SDXL-refiner-layout Lab with random toy-size weights."""
    return make_lab("toy-xl-refiner")


@pytest.fixture(scope="session")
def inpaint_lab():
    """A 9-channel inpainting SD1-layout Lab with random toy-size weights."""
    return make_lab("toy", in_channels=9)
