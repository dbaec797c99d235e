"""ControlNet: files (single-file in the original `control_model.*` layout or diffusers', diffusers folders), units
with AUTOMATIC1111's settings, model-free preprocessors, and the hook that adds a unit's residuals to the UNet."""
