"""The parity cases: which tool, sampler, schedule, steps, mode and model; and the combinations left out, with why.

Pure data (no torch): render.py renders `cases()`, and `skipped()` goes into the manifest as it is.
Names: labkit speaks A1111's labels ("DPM++ 2M", "Karras"); ComfyUI's own spelling is kept beside them.
"""
from dataclasses import asdict, dataclass

STEPS = 6  # N; every case is also rendered at N + 1 (the tests' yardstick is the N vs N+1 distance)
SD15_STEPS = 4
STRENGTH = 0.5
SEED = 42
SIZE = 64

# labkit / A1111 sampler label -> ComfyUI sampler name (None: ComfyUI has none)
SAMPLERS = {
    "Euler": "euler", "Heun": "heun", "LMS": "lms", "DPM2": "dpm_2", "DPM++ 2M": "dpmpp_2m",
    "DDIM": "ddim", "PLMS": None, "UniPC": "uni_pc",
    "Euler a": "euler_ancestral", "DPM++ 2M SDE": "dpmpp_2m_sde",  # stochastic: a measurement only
}
STOCHASTIC = {"Euler a", "DPM++ 2M SDE"}
A1111_TIMESTEP_SAMPLERS = {"DDIM", "PLMS", "UniPC"}  # modules/sd_samplers_timesteps.py: no schedule, no SGM
# labkit / A1111 schedule label -> ComfyUI scheduler name (None: ComfyUI has none)
SCHEDULES = {
    "Automatic": None, "Uniform": None, "Normal": "normal", "Karras": "karras", "Exponential": "exponential",
    "SGM Uniform": "sgm_uniform", "Simple": "simple", "DDIM": "ddim_uniform", "Beta": "beta",
}
IMG2IMG = [("Euler", "Karras"), ("DPM++ 2M", "Karras"), ("Euler", "Normal"), ("DDIM", "DDIM")]
SD15 = [("Euler", "Karras"), ("Euler", "Normal"), ("DPM++ 2M", "Karras")]
EXTRA_COMFY = [("UniPC", "uni_pc_bh2")]  # ComfyUI's second UniPC variant, beside uni_pc (bh1)


@dataclass(frozen=True)
class Case:
    model: str          # "toy" or "sd15" (random full-size SD 1.5 layout)
    mode: str           # "txt2img" or "img2img"
    tool: str           # "a1111", "a1111-sgm" (SGM noise multiplier on), "comfy"
    sampler: str        # labkit / A1111 label
    schedule: str       # labkit / A1111 label
    steps: int
    sampler_tool: str   # the tool's own name
    schedule_tool: str | None  # the tool's own name; None where the tool ignores it (A1111 DDIM/PLMS/UniPC)
    strength: float | None = None  # A1111 denoising strength / ComfyUI denoise (img2img)

    @property
    def stochastic(self):
        return self.sampler in STOCHASTIC

    @property
    def file(self):
        return f"{self.model}_{self.mode}.npz"

    @property
    def key(self):
        slug = lambda s: s.lower().replace("+", "p").replace(" ", "_")
        return "__".join([self.tool, slug(self.sampler_tool), slug(self.schedule_tool or "ignored"),
                          str(self.steps)])

    def record(self):
        return {**asdict(self), "stochastic": self.stochastic, "file": self.file, "key": self.key}


def _toy_txt2img():
    for tool in ("a1111", "a1111-sgm", "comfy"):
        for sampler, comfy_sampler in SAMPLERS.items():
            if tool == "comfy" and comfy_sampler is None:
                continue
            if tool != "comfy" and sampler in A1111_TIMESTEP_SAMPLERS:
                if tool == "a1111":
                    yield tool, sampler, "Automatic", sampler, None
                continue
            for schedule, comfy_schedule in SCHEDULES.items():
                if tool == "comfy":
                    if comfy_schedule is not None:
                        yield tool, sampler, schedule, comfy_sampler, comfy_schedule
                else:
                    yield tool, sampler, schedule, sampler, schedule
    for sampler, comfy_sampler in EXTRA_COMFY:
        for schedule, comfy_schedule in SCHEDULES.items():
            if comfy_schedule is not None:
                yield "comfy", sampler, schedule, comfy_sampler, comfy_schedule


def cases():
    out = []
    for n in (STEPS, STEPS + 1):
        for tool, sampler, schedule, st, sc in _toy_txt2img():
            out.append(Case("toy", "txt2img", tool, sampler, schedule, n, st, sc))
        for sampler, schedule in IMG2IMG:
            a_schedule = None if sampler in A1111_TIMESTEP_SAMPLERS else schedule
            out.append(Case("toy", "img2img", "a1111", sampler, schedule, n, sampler, a_schedule, STRENGTH))
            out.append(Case("toy", "img2img", "comfy", sampler, schedule, n, SAMPLERS[sampler], SCHEDULES[schedule],
                            STRENGTH))
    for n in (SD15_STEPS, SD15_STEPS + 1):
        for sampler, schedule in SD15:
            out.append(Case("sd15", "txt2img", "a1111", sampler, schedule, n, sampler, schedule))
            out.append(Case("sd15", "txt2img", "comfy", sampler, schedule, n, SAMPLERS[sampler], SCHEDULES[schedule]))
    keys = [(c.file, c.key) for c in out]
    assert len(keys) == len(set(keys)), "case keys must be unique"
    return out


def skipped():
    """Combinations not rendered, and why."""
    return [
        {"tool": "comfy", "sampler": "PLMS", "why": "ComfyUI has no PLMS sampler (comfy/samplers.py SAMPLER_NAMES)"},
        {"tool": "comfy", "schedule": "Automatic", "why": "ComfyUI has no 'automatic' scheduler: a KSampler always "
         "names one (and silently falls back to its first, 'simple', on an unknown name)"},
        {"tool": "comfy", "schedule": "Uniform", "why": "ComfyUI has no k-diffusion get_sigmas 'uniform'; its "
         "'normal' gives the same sigma values as A1111's Uniform and Normal (rendered as Normal)"},
        {"tool": "a1111-sgm", "sampler": "DDIM, PLMS, UniPC", "why": "A1111's timestep samplers never read the SGM "
         "noise multiplier (sd_samplers_timesteps.py): identical to the a1111 cases"},
        {"tool": "a1111", "sampler": "DDIM, PLMS, UniPC", "schedule": "all but one", "why": "A1111's timestep "
         "samplers ignore the schedule type (CompVisSampler.get_timesteps): one case each, schedule_tool null"},
        {"tool": "a1111-sgm", "mode": "img2img", "why": "A1111 never applies the SGM multiplier in img2img "
         "(KDiffusionSampler.sample_img2img starts from x + noise * sigma_sched[0]): identical to a1111"},
        {"model": "sd15", "tool": "a1111-sgm", "why": "not asked for (slow on CPU); the toy covers SGM"},
    ]
