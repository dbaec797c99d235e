"""Studio: the panels composed into one place to tweak live, over one Lab.

Generation runs on a worker thread so Interrupt and every other control answer during a run. One run at a time
per Studio: pressing Generate during a run queues a run with the settings as they are at the press (the queue is
shown, and "clear queue" drops the waiting runs); with "live" on, a moved control queues one run, and further
tweaks replace it while it waits.
"""

import base64
import html
import threading
from contextlib import contextmanager

import ipywidgets as w

from ..errors import BadInput
from ..families import MODES
from ..params import Params
from .common import close_tree, image_widget, png, show_error, with_summary
from .controlnet import ControlNetPanel
from .hires import HiresPanel
from .controls import PromptPanel, SamplingControls
from .gallery import Compare, Gallery
from .hotkeys import Hotkeys
from .loras import LoraToggles
from .models import ModelPicker
from .pictures import PictureGrid
from .pnginfo import PngInfo
from .xyz import XyzPlot
from .progress import StepPreview

TYPING_PAUSE = 1.0  # seconds a live Studio waits after the last keystroke in a prompt before it runs
# Long texts wrap inside their column instead of widening it; text boxes fit their column, borders included.
STYLE = """
.labkit-studio .labkit-notes, .labkit-studio .labkit-error { overflow-wrap: anywhere; word-break: break-word; }
.labkit-studio textarea { box-sizing: border-box; max-width: 100%; }
.labkit-studio img { max-width: 100%; }
.labkit-studio img.labkit-viewer { max-width: none; image-rendering: pixelated; }
"""


class Runner:
    """Runs queued jobs on a worker thread, one at a time, in order; the thread lives while jobs keep coming (its
    OpenMP team ends with it, so it never competes with the kernel's between runs). `queue` holds the jobs
    waiting (each the settings as they were when asked for); `on_queue(n)` hears the length whenever it changes;
    `clear()` drops the waiting ones (the run going on finishes)."""

    def __init__(self, work, on_error, on_queue=None, threads: int | None = None):
        self.work, self.on_error, self.on_queue = work, on_error, on_queue or (lambda n: None)
        self.threads = threads  # torch threads of the worker (None: torch's default)
        self._guard = threading.Lock()
        self._changed = threading.Condition(self._guard)
        self.busy = self.running = False  # running: a job has left the queue and runs
        self.queue = []
        self.thread = None

    def request(self, job, replace_last: bool = False) -> bool:
        """Queue `job` (or replace the last waiting one: live tweaks coalesce); True if the worker was idle."""
        with self._guard:
            if replace_last and self.queue:
                self.queue[-1] = job
            else:
                self.queue.append(job)
            was_idle, self.busy = not self.busy, True
            waiting = len(self.queue) - (not self.running)  # a job not yet taken by an idle worker runs next
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, name="labkit-studio", daemon=True)
                self.thread.start()
            self._changed.notify_all()
        self.on_queue(waiting)
        return was_idle

    def clear(self) -> int:
        """Drop the jobs still waiting; how many were dropped."""
        with self._guard:
            dropped, self.queue = len(self.queue), []
        self.on_queue(0)
        return dropped

    def _loop(self) -> None:
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)  # per calling thread: this worker's OpenMP team
        while True:
            with self._guard:
                if not self.queue:  # the thread ends with the burst of runs (and its OpenMP team with it)
                    self.busy, self.running, self.thread = False, False, None
                    self._changed.notify_all()
                    return
                job, self.running = self.queue.pop(0), True
                waiting = len(self.queue)
            self.on_queue(waiting)
            try:
                self.work(job)
            except Exception as error:  # shown in the panel; the worker goes on
                self.on_error(error)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker is idle; True if it is."""
        with self._guard:
            return self._changed.wait_for(lambda: not self.busy, timeout)


def worker_threads(lab, threads: int | None) -> int | None:
    """The torch threads of the Studio's worker on a CPU: `threads`, else half the cores. A second OpenMP team
    beside the kernel's (which loaded the model) ran the toy model 3x slower with both cores than with one
    (measured on 2 cores: 1.0 s against 0.3 s a run); on a GPU the CPU threads hardly matter (None)."""
    from ..devices import cpu_cores

    if threads is not None or not str(lab.device).startswith("cpu"):
        return threads
    return max(1, cpu_cores() // 2)


class Studio(w.VBox):
    """Prompt, sampling controls, LoRA toggles, mask canvas, live step preview, gallery and compare, over `lab`.

    `Studio(lab).generate()` works without a front end (papermill, scripts) and returns the Result; the
    Generate button runs the same on a worker thread. `refiner`: a Lab used for the refiner handoff."""

    def __init__(self, lab, refiner=None, params: Params | None = None, out_dir="outputs", debounce: float = 0.1,
                 preview: str = "auto", models_dir="models", threads: int | None = None):
        from .mask import MaskCanvas

        self.lab, self.refiner, self.debounce, self.typing_pause = lab, refiner, debounce, TYPING_PAUSE
        self._lock = threading.Lock()  # never two runs on one pipeline at once
        self._quiet = 0  # > 0 while the Studio itself sets controls (no live re-generation then)
        self._timer = None
        self.result, self.input_image = None, None
        cfg = 4.0 if lab.family_record.embedded else 7.0  # the toy models are trained for a lower CFG
        p = params or Params(prompt="a red circle on a white background", cfg=cfg)
        self.base = p
        tokenizer = lab.components.get("tokenizer") or lab.components.get("tokenizer_2")
        self.prompt = PromptPanel(tokenizer, p.prompt, p.negative_prompt, p.steps)
        self.sampling = SamplingControls(p, lab.native_size)
        self.loras = LoraToggles(lab)
        self.mask = MaskCanvas()
        self.preview = StepPreview(lab, preview)
        self.gallery = Gallery(out_dir)
        self.compare = Compare(gallery=self.gallery)
        self.png_info = PngInfo()
        self.xyz = XyzPlot(self.run_grid, lambda: list(self.lab.loras.loaded))
        self.models = ModelPicker(models_dir, current=lab.name or "")
        self.controlnet = ControlNetPanel(lambda: self.lab.controlnets.names(), self._picture, self._size)
        self.hires = HiresPanel(p, self._picture, self.set_input)
        self.mode = w.ToggleButtons(options=MODES, value="txt2img")
        self.mode_note = w.HTML()
        self.mode_note.add_class("labkit-mode-note")
        self.generate_button = w.Button(description="Generate", button_style="primary")
        self.generate_button.add_class("labkit-generate")
        self.live = w.Checkbox(False, description="live", indent=False, layout=w.Layout(width="80px"))
        self.use_output = w.Button(description="→ img2img", disabled=True, tooltip="after a first picture")
        self.to_inpaint = w.Button(description="→ inpaint", disabled=True, tooltip="after a first picture")
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="input picture")
        self.image = image_widget(max(256, lab.native_size))
        self.image.add_class("labkit-output")
        self.image.layout.display = "none"  # no empty box before the first picture: the hint stands there
        self.hint = w.HTML("<i>Press Generate (or Ctrl+Enter in the prompt): the picture appears here.</i>")
        self.batch_view = PictureGrid(layout=w.Layout(display="none"))  # a batch: click a picture to pick it
        self.selected = 0  # the picture of the batch that "→ img2img" / "→ inpaint" take
        self.notes = w.HTML(layout=w.Layout(max_width="100%"))
        self.notes.add_class("labkit-notes")
        self.errors = w.Output(layout=w.Layout(max_width="100%", overflow="auto"))
        self.queued = w.Label()
        self.queued.add_class("labkit-queue")
        self.clear_queue = w.Button(description="clear queue", layout=w.Layout(display="none", width="110px"))
        self.runner = Runner(self._work, self._error, self._show_queue, worker_threads(lab, threads))
        self.hotkeys = Hotkeys(lambda: self._guard(self.start))  # Ctrl+Enter anywhere in the panel
        self._wire()
        super().__init__(self._layout())
        self.add_class("labkit-studio")
        self._show_mode()

    # ---- layout and events -----------------------------------------------------------------------------
    def _layout(self) -> list:
        controls = w.VBox([self.prompt, self.sampling], layout=w.Layout(width="480px", min_width="480px"))
        side = max(256, self.lab.native_size)
        picture = w.VBox([w.HBox([self.generate_button, self.live]), w.HBox([self.use_output, self.to_inpaint]),
                          w.HBox([self.queued, self.clear_queue]), self.hint, self.image,
                          self.batch_view, self.notes, self.preview],
                         layout=w.Layout(width=f"{side + 40}px", min_width="0", overflow="hidden"))
        tabs = w.Tab([self.loras, w.VBox([self.upload, self.mask]), self.controlnet, self.hires, self.gallery,
                      self.compare, self.png_info, self.xyz, self.models])
        for i, title in enumerate(("LoRAs", "input & mask", "ControlNet", "hires fix", "gallery", "compare",
                                   "PNG Info", "X/Y/Z plot", "models")):
            tabs.set_title(i, title)
        self.picture_column, self.tabs = picture, tabs
        return [w.HTML(f"<style>{STYLE}</style>"), self.hotkeys, self.mode, self.mode_note,
                w.HBox([controls, picture]), tabs,
                self.errors]

    def _wire(self) -> None:
        self.generate_button.on_click(lambda _: self.start())
        self.clear_queue.on_click(lambda _: self.runner.clear())
        self.use_output.on_click(lambda _: self._guard(self.use_result))
        self.to_inpaint.on_click(lambda _: self._guard(self.use_result, "inpaint"))
        self.upload.observe(lambda c: self._guard(self._uploaded, c), names="value")
        self.mode.observe(lambda _: self._show_mode(), names="value")
        self.gallery.on_restore(self.show_params)
        self.png_info.on_send(self.receive)
        for control in [self.prompt.prompt, self.prompt.negative, *self.sampling.controls, *self.hires.controls,
                        self.mode]:
            control.observe(self._changed, names="value")
        for control in [self.sampling.width, self.sampling.height, *self.hires.controls[:5]]:
            control.observe(lambda _: self.hires.describe(*self._size(), self.lab.vae_scale), names="value")
        self.batch_view.observe(lambda c: self._select(c["new"]), names="selected")
        self._wire_loras()
        self.models.on_load(self.set_lab)
        self.mask.observe(self._changed, names=["strokes", "inverted"])

    def _wire_loras(self) -> None:
        self.loras.on_change(lambda: self._changed(None))
        self.loras.on_change(self.xyz.refresh_choices)

    def set_lab(self, lab, refiner=None) -> None:
        """Work on another model (the models tab's "load"): every panel follows, and the old model is dropped, so
        its memory is freed once nothing else holds it."""
        import gc

        with self._lock:
            old, self.lab, self.refiner = self.lab, lab, refiner
            self.prompt.tokenizer = lab.components.get("tokenizer") or lab.components.get("tokenizer_2")
            close_tree(self.loras)
            self.loras = LoraToggles(lab)
            self._wire_loras()
            self.tabs.children = (self.loras, *self.tabs.children[1:])
            self.preview.set_lab(lab)
            if old is not None and (self.sampling.width.value, self.sampling.height.value) == (old.native_size,) * 2:
                self.sampling.width.value = self.sampling.height.value = lab.native_size
            self.image.layout.width = f"{max(256, lab.native_size)}px"
            self._show_mode()
            self.xyz.refresh_choices()
            self.controlnet.rescan()  # the new model's family decides which ControlNets load
            del old
        gc.collect()
        if str(lab.device).startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def _guard(self, function, *args):
        try:
            return function(*args)
        except Exception as error:
            self._error(error)
            return None

    def _show_mode(self) -> None:
        """Show only the controls that apply to the mode (and the model), and say what is hidden and why."""
        mode = self.mode.value
        self.sampling.strength.layout.display = None if mode != "txt2img" else "none"
        self.sampling.switch_at.layout.display = None if self.refiner is not None else "none"
        notes = {"txt2img": "strength hidden: it is how much of an input picture img2img and inpaint redraw",
                 "img2img": "img2img starts from the input picture ('→ img2img' under a result, or upload one)",
                 "inpaint": "inpaint redraws what is painted in the 'input & mask' tab"}
        refiner = "" if self.refiner is not None else "; switch at hidden: no refiner"
        self.mode_note.value = f"<small>{notes[mode]}{refiner}</small>"

    @contextmanager
    def _quietly(self):
        """Controls set by the Studio itself inside this block start no live run."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    def _changed(self, change) -> None:
        """A control moved: with "live" on, generate again once the controls rest for `debounce` seconds (a
        prompt being typed: once typing pauses for `typing_pause`, so half-typed words start no run)."""
        if self._quiet or not self.live.value:
            return
        if self._timer is not None:
            self._timer.cancel()
        typing = change is not None and change.get("owner") in (self.prompt.prompt, self.prompt.negative)
        self._timer = threading.Timer(self.typing_pause if typing else self.debounce, self.start, kwargs={"live": True})
        self._timer.daemon = True
        self._timer.start()

    # ---- settings --------------------------------------------------------------------------------------
    @property
    def params(self) -> Params:
        """The Params the controls describe now (with the ControlNet units that are on; hires fix in txt2img)."""
        p = self.sampling.apply(self.prompt.apply(self.base)).replace(control=self.controlnet.units())
        return self.hires.apply(p) if self.mode.value == "txt2img" else p.replace(hires=False)

    def _picture(self):
        """The picture shown now (the picked one of a batch), or None before the first run."""
        return self.result.images[self.selected] if self.result is not None else None

    def _size(self) -> tuple[int, int]:
        p = self.sampling.apply(self.base)
        return p.width or self.lab.native_size, p.height or self.lab.native_size

    def show_params(self, params: Params) -> None:
        """Set every control from `params` (a restored result), without triggering a live run."""
        with self._quietly():
            self.base = params
            self.prompt.show(params)
            self.sampling.show(params)
            self.controlnet.show(params.control)
            self.hires.show(params)
            self.mask.feather = params.mask_blur

    def receive(self, params: Params, mode: str, picture=None) -> None:
        """Settings (and a picture) sent from PNG Info: the controls restored, the mode set, the picture the input."""
        self.show_params(params)
        if picture is not None:
            self.set_input(picture)
        with self._quietly():
            self.mode.value = mode

    def set_input(self, image) -> None:
        """The picture img2img and inpaint start from (also shown in the mask canvas)."""
        from ..images import to_rgb

        self.input_image = to_rgb(image)
        self.mask.set_image(self.input_image)

    def use_result(self, mode: str | None = None) -> None:
        """The picked picture becomes the input of img2img (or of `mode`); the mask tab shows it for inpaint."""
        if self.result is None:
            raise BadInput("Nothing generated yet: press Generate first, or upload an input picture.")
        self.set_input(self.result.images[self.selected])
        if mode is not None:
            self.mode.value = mode
            if mode == "inpaint":
                self.tabs.selected_index = 1  # the mask is painted there
        elif self.mode.value == "txt2img":
            self.mode.value = "img2img"

    def _uploaded(self, change) -> None:
        import io

        from PIL import Image

        files = change["new"]
        if files:
            self.set_input(Image.open(io.BytesIO(bytes(files[0]["content"]))))

    # ---- running ---------------------------------------------------------------------------------------
    def start(self, live: bool = False) -> bool:
        """Generate on the worker thread with the settings as they are now (what the button does); queued behind
        a run going on (a live tweak replaces the live tweak still waiting)."""
        self.clear_messages()
        return self.runner.request((self.mode.value, self.params), replace_last=live)

    def _show_queue(self, waiting: int) -> None:
        self.queued.value = f"{waiting} queued" if waiting else ""
        self.clear_queue.layout.display = None if waiting else "none"

    def clear_messages(self) -> None:
        """Errors and notes are about the last run: a new run starts without them."""
        self.errors.clear_output()
        self.notes.value = ""
        self.sampling.clear_note()

    def generate(self, **overrides):
        """Generate now on this thread with the controls' settings (and `overrides`); returns the Result."""
        params = self.params.replace(**overrides) if overrides else self.params
        with self._lock:
            return self._run(params)

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until a pending live run has started and every run has finished; True if idle."""
        timer = self._timer
        if timer is not None:
            timer.join(timeout)
        return self.runner.wait(timeout)

    def run_grid(self, axes: dict, confirm: bool = False):
        """labkit.grid over the Studio's Lab, mode, input picture and mask, and settings (the X/Y/Z tab's work)."""
        from ..grids import grid

        mode = self.mode.value
        extra = {"image": self.input_image} if mode != "txt2img" else {}
        if mode == "inpaint":
            extra["mask"] = self.mask.mask
        if mode != "txt2img" and self.input_image is None:
            raise BadInput(f"{mode} starts from a picture: press '→ img2img' or '→ inpaint' under a result first.")
        with self._lock:
            return grid(getattr(self.lab, mode), self.params, **axes, progress=False, confirm=confirm, **extra)

    def _work(self, job) -> None:
        mode, params = job
        with self._lock:
            self._run(params, mode)

    def _run(self, params: Params, mode: str | None = None):
        mode = mode or self.mode.value
        self.clear_messages()
        self.generate_button.description = "Generating…"
        self.preview.start(params.steps)
        try:
            result = self._call(mode, params)
        finally:
            self.generate_button.description = "Generate"
        self.preview.finish()
        self._show(result)
        return result

    def _call(self, mode: str, params: Params):
        kw = {"params": params, "on_step": self.preview.on_step, "refiner": self.refiner}
        if mode == "txt2img":
            return self.lab.txt2img(**kw)
        if self.input_image is None:
            raise BadInput(f"{mode} starts from a picture: press '→ img2img' or '→ inpaint' under a result, or "
                           f"upload one.")
        if mode == "img2img":
            return self.lab.img2img(self.input_image, **kw)
        mask = self.mask.mask
        if mask.getextrema()[1] == 0:
            raise BadInput("The mask is empty: paint the region to redraw in the 'input & mask' tab.")
        kw["params"] = params.replace(mask_blur=self.mask.feather)  # what the canvas' feather preview shows
        return self.lab.inpaint(self.input_image, mask, **kw)

    def _show(self, result) -> None:
        previous, self.result = self.result, result
        self.hint.layout.display, self.image.layout.display = "none", None
        for button, what in ((self.use_output, "img2img from"), (self.to_inpaint, "paint a mask over")):
            button.disabled, button.tooltip = False, f"{what} the picked picture"
        self.sampling.show_used(result.seed)  # the seed field keeps what was typed (-1 stays random)
        self._show_batch(result)
        notes = list(result.notes) + ([f"interrupted after step {self.preview.steps_done}"]
                                      if self.preview.interrupted else [])
        self.notes.value = "<br>".join(f"<small>{html.escape(n)}</small>" for n in notes)
        if not self.preview.interrupted:
            self.gallery.add(result)
            if previous is not None and self.compare.gallery is None:
                self.compare.set(previous, result)

    def _show_batch(self, result) -> None:
        """One picture: shown large. A batch: every picture in a grid too (click one to pick it: shown large)."""
        from .gallery import caption

        many = len(result.images) > 1
        thumb = max(48, max(256, self.lab.native_size) // min(4, len(result.images)) - 12)
        with self._quietly():
            self.selected = 0
            self.batch_view.show(result.images if many else [], [caption(result, i) for i in range(len(result.images))]
                                 if many else [], size=thumb)
        self.batch_view.layout.display = None if many else "none"
        self.image.value = png(result.images[0])

    def _select(self, index) -> None:
        """Pick picture `index` of the batch: shown large, and what "→ img2img" / "→ inpaint" take."""
        if index is None or self.result is None:
            return
        self.selected = index
        self.image.value = png(self.result.images[index])

    def _error(self, error: BaseException) -> None:
        from ..errors import LabkitError

        self.preview.finish()
        self.preview.status.value = f"error: {type(error).__name__}"  # not "done": the run gave no picture
        self.notes.value = f"<span class='labkit-error'>{html.escape(f'{type(error).__name__}: {error}')}</span>"
        if not isinstance(error, LabkitError):  # a bug: the traceback too, scrolled inside its own box
            show_error(self.errors, error)

    # ---- headless display ------------------------------------------------------------------------------
    def summary(self) -> list[str]:
        p = self.params
        lines = [f"labkit Studio · {self.lab.name or self.lab.family} · {self.mode.value}",
                 f"prompt: {p.prompt!r}", f"negative: {p.negative_prompt!r}",
                 f"{p.sampler} / {p.schedule}, {p.steps} steps, CFG {p.cfg:g}, {p.width}x{p.height}, "
                 f"seed {p.seed if p.seed >= 0 else 'random'}, batch {p.batch_size}",
                 f"LoRAs: {', '.join(f'{n} {t[1]:g}' for n, t in self.lab.loras.active.items()) or 'none'}"]
        if self.result is not None:
            lines.append(f"last result: {self.result!r}")
        return lines

    def _repr_mimebundle_(self, **kwargs):
        bundle = with_summary(super()._repr_mimebundle_(**kwargs), self.summary())
        if self.result is not None:
            data = base64.b64encode(png(self.result.image)).decode()
            bundle["text/html"] += f"<br><img src='data:image/png;base64,{data}'>"
        return bundle
