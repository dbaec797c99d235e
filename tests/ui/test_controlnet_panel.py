"""The Studio's ControlNet tab without a browser: a unit takes the current picture, shows its map, describes a
ControlUnit with the extension's settings, restores a recorded unit's settings, and its units run."""

import numpy as np
from PIL import Image

import labkit
from labkit.ui import Studio


def scene():
    rgb = np.full((64, 64, 3), 245, np.uint8)
    rgb[16:48, 20:44] = (40, 80, 220)
    return Image.fromarray(rgb)


def test_a_unit_takes_the_current_picture_and_describes_its_settings(sd_lab, tmp_path):
    from tests.helpers.controlnets import make_controlnet, save_original

    save_original(make_controlnet(sd_lab, seed=2, scale=0.2), tmp_path / "edges.safetensors")
    sd_lab.controlnets.search_paths, sd_lab.controlnets.loaded = [tmp_path], {}
    s = Studio(sd_lab)
    panel = s.controlnet.unit_panels[0]
    assert s.params.control == () and panel.model.options == ("edges",)
    panel.use_current.click()  # nothing generated yet: said in the panel
    assert "no picture yet" in panel.message.value and not panel.enabled.value
    s.generate(steps=2, seed=1, prompt="a blue square")
    panel.use_current.click()
    assert panel.enabled.value and np.array_equal(np.asarray(panel.picture), np.asarray(s.result.image))
    panel.module.value = "canny"
    assert panel.threshold_a.description == "low threshold" and panel.threshold_b.layout.display is None
    panel.set_picture(scene())
    assert panel.map.value[:4] == b"\x89PNG"  # the map preview
    panel.weight.value, panel.span.value, panel.control_mode.value = 0.6, (0.1, 0.7), "My prompt is more important"
    unit = s.params.control[0]
    assert (unit.model, unit.module, unit.weight, unit.guidance_start, unit.guidance_end, unit.control_mode,
            unit.threshold_a, unit.threshold_b) == ("edges", "canny", 0.6, 0.1, 0.7, "My prompt is more important",
                                                    100.0, 200.0)
    r = s.generate(steps=4, seed=1)
    assert r.params.control[0].model.startswith("edges [") and len(r.control_maps) == 1
    s.controlnet.unit_panels[1].show(r.params.control[0])  # a restored recipe's unit: settings, no picture
    assert s.controlnet.unit_panels[1].module.value == "canny" and s.controlnet.unit_panels[1].unit() is None
