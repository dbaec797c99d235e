"""Upscalers by A1111 name: latent modes (hires fix), pixel resamplers, and model files read by spandrel."""

from .models import UpscalerModel, load
from .registry import (LATENT_MODES, PIXEL_MODES, UpscalerChoice, choose, model_files, names,
                       search_paths)
from .run import load_upscaler, resize_with, upscale

__all__ = ["LATENT_MODES", "PIXEL_MODES", "UpscalerChoice", "UpscalerModel", "choose", "load", "load_upscaler",
           "model_files", "names", "resize_with", "search_paths", "upscale"]
