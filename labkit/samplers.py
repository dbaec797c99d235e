"""A1111 sampler and schedule names <-> diffusers schedulers: data tables and small pure functions.

    resolve("DPM++ 2M", "Karras")                         # (DPMSolverMultistepScheduler, {flags})
    pipe.scheduler = make_scheduler("Euler a", "Automatic", pipe.scheduler.config)
    a1111_name(pipe.scheduler)                             # ("Euler a", "Uniform")

A1111 names are the canonical spelling; A1111's API aliases ("k_euler_a"), its pre-1.9 combined names
("DPM++ 2M Karras") and ComfyUI's names ("dpmpp_2m", "karras") are accepted too, in any case.
diffusers is imported only inside the functions that need it, so importing this module stays light.
"""

import importlib
import importlib.util
import inspect
import re

from . import checks
from .checks import did_you_mean
from .errors import BadInput

AUTOMATIC = "Automatic"

# A1111 sampler -> (diffusers scheduler class, constructor flags, what "Automatic" means since A1111 v1.9).
# The flags pin every option that tells the rows of one class apart, so `a1111_name` can read them back.
# A default of None: the scheduler computes its own timesteps and no schedule type applies (LCM).
SAMPLERS = {
    "Euler": ("EulerDiscreteScheduler", {}, "Uniform"),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}, "Uniform"),
    "LMS": ("LMSDiscreteScheduler", {}, "Uniform"),
    "Heun": ("HeunDiscreteScheduler", {}, "Uniform"),
    "DPM2": ("KDPM2DiscreteScheduler", {}, "Karras"),
    "DPM2 a": ("KDPM2AncestralDiscreteScheduler", {}, "Karras"),
    "DPM++ 2M": ("DPMSolverMultistepScheduler",
                 {"algorithm_type": "dpmsolver++", "solver_order": 2, "solver_type": "midpoint"}, "Karras"),
    "DPM++ SDE": ("DPMSolverSDEScheduler", {}, "Karras"),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler",
                     {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "solver_type": "midpoint"},
                     "Exponential"),
    "DPM++ 2M SDE Heun": ("DPMSolverMultistepScheduler",
                          {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "solver_type": "heun"},
                          "Exponential"),
    "DPM++ 3M SDE": ("DPMSolverMultistepScheduler",
                     {"algorithm_type": "sde-dpmsolver++", "solver_order": 3, "solver_type": "midpoint"},
                     "Exponential"),
    # A1111 runs DDIM and PLMS on its own timesteps 1, 1+1000//n, ... whatever the schedule type: the "DDIM" schedule.
    "DDIM": ("DDIMScheduler", {}, "DDIM"),
    "PLMS": ("PNDMScheduler", {"skip_prk_steps": True}, "DDIM"),
    # A1111's UniPC options default to order 3, variant bh1 and "time_uniform" steps (diffusers' linspace) that
    # end at the smallest sigma, not at 0 (diffusers' bh1 also turns a last step to sigma 0 into NaN).
    "UniPC": ("UniPCMultistepScheduler",
              {"solver_order": 3, "solver_type": "bh1", "predict_x0": True, "final_sigmas_type": "sigma_min"},
              "Uniform"),
    "LCM": ("LCMScheduler", {}, None),
}

# A1111 samplers that diffusers has no equivalent for -> why. labkit says so rather than run something else.
UNSUPPORTED = {
    "DPM++ 2S a": "it is an ancestral single-step DPM-Solver++(2S); diffusers' DPMSolverSinglestepScheduler is "
                  "not ancestral, so it would give different images",
    "DPM fast": "k-diffusion's DPM-Solver with a step-count-dependent mix of orders is not in diffusers",
    "DPM adaptive": "it chooses its own number of steps by error control; diffusers schedulers take a fixed count",
    "Restart": "Restart sampling re-noises and repeats parts of the schedule; no diffusers scheduler does that",
    "DDIM CFG++": "CFG++ changes how guidance enters each update; diffusers' DDIMScheduler has no such option",
}

# Schedule type -> the flags that select it ("Automatic" is not here: it means a sampler's default, see SAMPLERS).
# A1111 "Uniform" and "Normal" both step t from 999 down to 0 in equal steps (k-diffusion's get_sigmas): that is
# diffusers' "linspace", exactly so for Euler/Heun/DPM2/LMS/DDIM/PLMS. DPMSolverMultistep and UniPC drop t=0 from
# their linspace (the same points as SGM Uniform); no flag gives A1111's points there, linspace is the nearest.
# "SGM Uniform" and "Simple" step from 999 in equal steps that stop short of 0: diffusers' "trailing".
# "DDIM" is A1111's (and ComfyUI's ddim_uniform) t = 1, 1+1000//n, ...: diffusers' "leading" with steps_offset 1.
# Karras/Exponential/Beta span the model's whole sigma range in A1111; Euler-like schedulers in diffusers take
# that range from their timesteps, so these also pin "linspace" (999 and 0 are then the end points).
SCHEDULES = {
    "Uniform": {"timestep_spacing": "linspace"},
    "Normal": {"timestep_spacing": "linspace"},
    "Karras": {"use_karras_sigmas": True, "timestep_spacing": "linspace"},
    "Exponential": {"use_exponential_sigmas": True, "timestep_spacing": "linspace"},
    "Beta": {"use_beta_sigmas": True, "timestep_spacing": "linspace"},
    "SGM Uniform": {"timestep_spacing": "trailing"},
    "Simple": {"timestep_spacing": "trailing"},
    "DDIM": {"timestep_spacing": "leading", "steps_offset": 1},
}

# A1111 schedule types that diffusers has no flag for -> why.
UNSUPPORTED_SCHEDULES = {
    "Polyexponential": "diffusers has no flag for k-diffusion's polyexponential sigmas",
    "KL Optimal": "diffusers has no flag for the KL-optimal (tan-interpolated) sigmas",
    "Align Your Steps": "diffusers takes Align Your Steps only as custom timesteps at call time, not as a flag",
}

# Before A1111 v1.9 a sampler name without a suffix meant uniform sigmas; v1.9 gave some samplers a default.
_BEFORE_V1_9 = {"Karras": "Uniform", "Exponential": "Uniform"}


# Constructor arguments a scheduler declares but never reads (checked in diffusers 0.42.1's set_timesteps).
_IGNORED_FLAGS = {"LCMScheduler": frozenset({"timestep_spacing", "steps_offset"})}

# Reading a schedule back from a scheduler's config: the first (flag, value) that matches names it.
_SCHEDULE_SIGNS = (
    ("use_karras_sigmas", True, "Karras"),
    ("use_exponential_sigmas", True, "Exponential"),
    ("use_beta_sigmas", True, "Beta"),
    ("timestep_spacing", "linspace", "Uniform"),
    ("timestep_spacing", "trailing", "SGM Uniform"),
    ("timestep_spacing", "leading", "DDIM"),
)

# Sampler or schedule -> (package diffusers needs for it, what for).
NEEDS = {
    "DPM++ SDE": ("torchsde", "its Brownian-tree noise"),
    "LMS": ("scipy", "its linear multistep coefficients"),
    "Beta": ("scipy", "the beta distribution's quantiles"),
}

# Samplers whose noise A1111 scales with eta (default 1.0); diffusers always adds the full noise (eta 1).
_ETA_ONE = frozenset({"Euler a", "DPM2 a", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE"})
# Samplers whose eta diffusers takes as a pipeline argument: pipe(..., eta=eta).
_ETA_FREE = frozenset({"DDIM"})

# ComfyUI KSampler names -> A1111 names (the *_gpu variants only draw their Brownian noise on the GPU;
# ComfyUI's "ddim" is Euler on DDIM's update, which is the same step).
COMFY_SAMPLERS = {
    "euler": "Euler", "euler_ancestral": "Euler a", "lms": "LMS", "heun": "Heun",
    "dpm_2": "DPM2", "dpm_2_ancestral": "DPM2 a", "dpmpp_2m": "DPM++ 2M",
    "dpmpp_sde": "DPM++ SDE", "dpmpp_sde_gpu": "DPM++ SDE",
    "dpmpp_2m_sde": "DPM++ 2M SDE", "dpmpp_2m_sde_gpu": "DPM++ 2M SDE",
    "dpmpp_3m_sde": "DPM++ 3M SDE", "dpmpp_3m_sde_gpu": "DPM++ 3M SDE",
    "ddim": "DDIM", "uni_pc": "UniPC", "lcm": "LCM",
    "dpmpp_2s_ancestral": "DPM++ 2S a", "dpm_fast": "DPM fast", "dpm_adaptive": "DPM adaptive",
}
COMFY_SCHEDULERS = {
    "normal": "Normal", "karras": "Karras", "exponential": "Exponential", "sgm_uniform": "SGM Uniform",
    "simple": "Simple", "ddim_uniform": "DDIM", "beta": "Beta", "kl_optimal": "KL Optimal",
}

# A1111's API aliases and internal names -> A1111 names ("_ka"/"_exp" suffixes are split off like " Karras").
SAMPLER_ALIASES = {
    "k_euler": "Euler", "k_euler_a": "Euler a", "k_euler_ancestral": "Euler a", "k_lms": "LMS", "k_heun": "Heun",
    "k_dpm_2": "DPM2", "k_dpm_2_a": "DPM2 a", "k_dpmpp_2m": "DPM++ 2M", "k_dpmpp_sde": "DPM++ SDE",
    "k_dpmpp_2m_sde": "DPM++ 2M SDE", "k_dpmpp_2m_sde_heun": "DPM++ 2M SDE Heun", "k_dpmpp_3m_sde": "DPM++ 3M SDE",
    "k_lcm": "LCM", "k_dpmpp_2s_a": "DPM++ 2S a", "k_dpm_fast": "DPM fast", "k_dpm_ad": "DPM adaptive",
    "ddim_cfgpp": "DDIM CFG++",
}
SCHEDULE_ALIASES = {"sgmuniform": "SGM Uniform", "kl_optimal": "KL Optimal", "align_your_steps": "Align Your Steps"}

_SAMPLER_LOOKUP = {
    **{name.lower(): name for name in (*SAMPLERS, *UNSUPPORTED)}, **SAMPLER_ALIASES, **COMFY_SAMPLERS,
}
_SCHEDULE_LOOKUP = {
    **{name.lower(): name for name in (AUTOMATIC, *SCHEDULES, *UNSUPPORTED_SCHEDULES)},
    **SCHEDULE_ALIASES, **COMFY_SCHEDULERS,
}
# (lower-case suffix, schedule), longest first: "DPM++ 2M Karras", "k_dpmpp_2m_ka", "Euler SGM Uniform".
_SUFFIXES = tuple(sorted(
    [(" " + key, name) for key, name in _SCHEDULE_LOOKUP.items() if name != AUTOMATIC]
    + [("_ka", "Karras"), ("_exp", "Exponential")],
    key=lambda item: -len(item[0]),
))

# Flags the tables set. Where a sampler and schedule leave one unset it takes the class's own default, so a value
# left in the model's config (by a scheduler made earlier, say) cannot leak through; steps_offset is the model's.
_MANAGED = frozenset({flag for row in SAMPLERS.values() for flag in row[1]}
                     | {flag for flags in SCHEDULES.values() for flag in flags}) - {"steps_offset"}

_RECORD = ("_labkit_sampler", "_labkit_schedule")  # config keys where make_scheduler notes the A1111 names


def names() -> list[str]:
    """The A1111 sampler names labkit can run."""
    return list(SAMPLERS)


def schedules() -> list[str]:
    """The A1111 schedule types labkit can run, "Automatic" first."""
    return [AUTOMATIC, *SCHEDULES]


def split_combined(name: str) -> tuple[str, str | None]:
    """Split a pre-1.9 combined name: "DPM++ 2M Karras" -> ("DPM++ 2M", "Karras"); "Euler a" -> ("Euler a", None).

    Known samplers come back in A1111's spelling; anything else comes back unchanged.
    """
    text = name.strip()
    low = text.lower()
    if low in _SAMPLER_LOOKUP:
        return _SAMPLER_LOOKUP[low], None
    for suffix, schedule in _SUFFIXES:
        head = low[: -len(suffix)]
        if low.endswith(suffix) and head in _SAMPLER_LOOKUP:
            return _SAMPLER_LOOKUP[head], schedule
    return text, None


def canonical(name: str, schedule: str | None = AUTOMATIC, version: str | None = None) -> tuple[str, str]:
    """A1111's names for a sampler and schedule, with "Automatic" replaced by what it meant in `version`.

    `schedule` None or "" means "Automatic" (an infotext without `Schedule type`). `version` is A1111's
    `Version` field ("v1.6.0", "1.9.4", Forge's "f2.0.1v1.10.1-..."); None means a current version.
    Raises BadInput for unknown names and for names diffusers cannot run, saying why.
    """
    checks.text("sampler", name)
    checks.text("schedule", schedule, allow_none=True)
    if version is not None:
        checks.text("version", version)
    sampler, suffix = split_combined(name)
    requested = _schedule_name(schedule)
    if suffix and requested not in (AUTOMATIC, suffix):
        raise BadInput(f"{name!r} already names the schedule {suffix!r}, but schedule={schedule!r} was given: "
                       f"pass the sampler alone ({sampler!r}) with the schedule you want.")
    sampler = _sampler_name(sampler, original=name)
    chosen = suffix or requested
    if chosen in UNSUPPORTED_SCHEDULES:
        raise BadInput(f"Schedule type {chosen!r} has no diffusers equivalent: {UNSUPPORTED_SCHEDULES[chosen]}. "
                       f"Choose one of: {', '.join(schedules())}.")
    if chosen == AUTOMATIC:
        chosen = _automatic(sampler, version)
    return sampler, chosen


def resolve(name: str, schedule: str | None = AUTOMATIC, version: str | None = None) -> tuple[type, dict]:
    """The diffusers scheduler class and constructor flags for an A1111 sampler and schedule type.

    Build it with `cls.from_config(model_scheduler_config, **flags)` (or use `make_scheduler`).
    Raises BadInput when a name is unknown, has no diffusers equivalent, needs a missing package, or when the
    schedule needs a flag that the sampler's diffusers class does not have (e.g. Karras with DDIM).
    """
    sampler, schedule = canonical(name, schedule, version)
    _check_packages(sampler, schedule)
    if NEEDS.get(sampler, (None,))[0] == "torchsde":
        from .quiet import hide_torchsde_rounding

        hide_torchsde_rounding()
    cls = getattr(importlib.import_module("diffusers"), SAMPLERS[sampler][0])
    return cls, _flags(sampler, schedule, cls)


def make_scheduler(name: str, schedule: str | None, base_config, version: str | None = None, eta: float | None = None,
                   planned: bool = False):
    """A configured diffusers scheduler for an A1111 sampler and schedule type.

    `base_config` is the model's own scheduler config (betas, prediction_type...): `pipe.scheduler.config`.
    `eta` is checked against what diffusers can do: only DDIM's is adjustable, and it goes to the pipeline
    call (`pipe(..., eta=eta)`); the ancestral and SDE samplers always use A1111's default 1.0. `planned`: the
    noise levels will be set by a sampling plan (`labkit.sampling`), so a schedule type the class has no flag
    for is allowed (the class is built on its default schedule).
    """
    if not hasattr(base_config, "keys"):
        raise BadInput(f"base_config={base_config!r} is not a scheduler config: pass the model's own, e.g. "
                       f"lab.pipe.scheduler.config or lab.scheduler_config.")
    sampler, resolved = canonical(name, schedule, version)
    _check_eta(sampler, eta)
    try:
        cls, flags = resolve(sampler, resolved)
    except BadInput:
        if not planned:
            raise
        cls, flags = resolve(sampler, AUTOMATIC)
    record = dict(zip(_RECORD, (sampler, resolved)))
    return cls.from_config({**dict(base_config), **record}, **flags)


def check(name: str, schedule: str | None = AUTOMATIC, eta: float | None = None) -> tuple[str, str]:
    """A1111's (sampler, schedule) once `name`, `schedule` and `eta` can be used (the names exist and have a
    diffusers equivalent, the packages they need are installed, diffusers honours eta); BadInput naming the fix
    otherwise. What a Lab checks before a generation starts; whether a schedule fits the sampler's diffusers class
    is the scheduler set-up's question (`make_scheduler`)."""
    sampler, resolved = canonical(name, schedule)
    _check_eta(sampler, eta)
    _check_packages(sampler, resolved)
    return sampler, resolved


def a1111_name(scheduler) -> tuple[str, str]:
    """(sampler, schedule) in A1111's names for a configured diffusers scheduler, for writing metadata.

    A scheduler from `make_scheduler` gives back the names it was made from; any other is read from its class
    and config ("Normal" reads back as "Uniform", "Simple" as "SGM Uniform": diffusers cannot tell them apart).
    Raises BadInput when no A1111 sampler matches.
    """
    recorded = tuple(scheduler.config.get(key) for key in _RECORD)
    if recorded[0] and _made_by(scheduler, *recorded):
        return recorded
    sampler = _sampler_of(scheduler)
    return sampler, _schedule_of(scheduler, sampler)


def from_comfy(sampler_name: str, scheduler: str) -> tuple[str, str]:
    """A1111's (sampler, schedule) for ComfyUI's KSampler `sampler_name` and `scheduler` values."""
    checks.text("sampler_name", sampler_name)
    checks.text("scheduler", scheduler)
    sampler = COMFY_SAMPLERS.get(sampler_name.strip().lower())
    schedule = COMFY_SCHEDULERS.get(scheduler.strip().lower())
    if sampler is None:
        raise BadInput(f"ComfyUI sampler {sampler_name!r} has no A1111 equivalent. "
                       f"Known: {', '.join(COMFY_SAMPLERS)}." + did_you_mean(sampler_name, COMFY_SAMPLERS))
    if schedule is None:
        raise BadInput(f"ComfyUI scheduler {scheduler!r} has no A1111 equivalent. "
                       f"Known: {', '.join(COMFY_SCHEDULERS)}." + did_you_mean(scheduler, COMFY_SCHEDULERS))
    return sampler, schedule


def _sampler_name(text: str, original: str) -> str:
    """A1111's name for a sampler; BadInput if unknown or if diffusers has no equivalent."""
    name = _SAMPLER_LOOKUP.get(text.strip().lower())
    if name is None:
        raise BadInput(f"Unknown sampler {original!r}. Valid samplers: {', '.join(names())}."
                       + did_you_mean(text, [*names(), *SAMPLER_ALIASES, *COMFY_SAMPLERS]))
    if name in UNSUPPORTED:
        raise BadInput(f"Sampler {name!r} has no diffusers equivalent: {UNSUPPORTED[name]}. "
                       f"Choose one of: {', '.join(names())}.")
    return name


def _schedule_name(text: str | None) -> str:
    """A1111's label for a schedule type; None or "" is "Automatic"."""
    name = _SCHEDULE_LOOKUP.get((text or AUTOMATIC).strip().lower())
    if name is None:
        raise BadInput(f"Unknown schedule type {text!r}. Valid schedule types: {', '.join(schedules())}."
                       + did_you_mean(text, [*schedules(), *COMFY_SCHEDULERS]))
    return name


def _automatic(sampler: str, version: str | None) -> str:
    """What "Automatic" (or no schedule at all) meant for `sampler` in A1111 `version`."""
    default = SAMPLERS[sampler][2] or AUTOMATIC
    if version is None or _version(version) >= (1, 9):
        return default
    return _BEFORE_V1_9.get(default, default)


def _version(text: str) -> tuple[int, int]:
    """(major, minor) of an A1111 version string; Forge's "f2.0.1v1.10.1-..." gives its A1111 base (1, 10)."""
    found = re.findall(r"(?:^|v)(\d+)\.(\d+)", str(text).strip())
    if not found:
        raise BadInput(f"Cannot read an A1111 version from {text!r}: expected a form like 'v1.10.1' or '1.9.4'.")
    return int(found[-1][0]), int(found[-1][1])


def _check_packages(sampler: str, schedule: str) -> None:
    """BadInput naming `pip install ...` when diffusers needs a package that is not installed."""
    for key in (sampler, schedule):
        package, purpose = NEEDS.get(key, (None, None))
        if package and importlib.util.find_spec(package) is None:
            raise BadInput(f"{key} needs the {package} package for {purpose}, and it is not installed: "
                           f"pip install {package}")


def _accepted(cls) -> set:
    """Constructor arguments that `cls` really uses."""
    return set(inspect.signature(cls.__init__).parameters) - _IGNORED_FLAGS.get(cls.__name__, frozenset())


def _flags(sampler: str, schedule: str, cls) -> dict:
    """Constructor flags for `sampler` on `schedule`; BadInput if the class lacks a flag the schedule needs."""
    accepted = _accepted(cls)
    wanted = SCHEDULES.get(schedule, {})
    missing = [flag for flag in wanted if flag not in accepted]
    if missing:
        usable = [AUTOMATIC] + [name for name, flags in SCHEDULES.items() if set(flags) <= accepted]
        raise BadInput(f"Schedule type {schedule!r} needs {', '.join(missing)}, which diffusers' {cls.__name__} "
                       f"(sampler {sampler!r}) does not support. Schedule types for {sampler}: {', '.join(usable)}.")
    params = inspect.signature(cls.__init__).parameters
    defaults = {flag: params[flag].default for flag in sorted(_MANAGED & accepted)}
    return {**defaults, **SAMPLERS[sampler][1], **wanted}


def _check_eta(sampler: str, eta: float | None) -> None:
    """BadInput when diffusers cannot honour `eta` for `sampler`."""
    if eta is not None:
        eta = checks.real("eta", eta, low=0)
    if eta is None or sampler in _ETA_FREE or (sampler in _ETA_ONE and eta == 1.0):
        return
    if sampler in _ETA_ONE:
        raise BadInput(f"eta={eta} with {sampler}: diffusers always adds the full noise (A1111's eta 1.0). "
                       f"Use eta=None or 1.0, or DDIM, whose eta is adjustable.")
    raise BadInput(f"eta={eta} with {sampler}: this sampler has no eta in A1111 or diffusers; leave eta=None "
                   f"(DDIM takes an eta).")


def _matches(scheduler, cls_name: str, flags: dict) -> bool:
    """Whether `scheduler` is a `cls_name` whose config holds `flags`."""
    config = scheduler.config
    return type(scheduler).__name__ == cls_name and all(config.get(k) == v for k, v in flags.items())


def _made_by(scheduler, sampler: str, schedule: str) -> bool:
    """Whether the names recorded in a scheduler's config still describe it (configs get copied around)."""
    try:
        cls, flags = resolve(sampler, schedule)
    except BadInput:
        return False
    return _matches(scheduler, cls.__name__, flags)


def _sampler_of(scheduler) -> str:
    """The A1111 sampler whose class and flags `scheduler` has; BadInput if none."""
    for sampler, (cls_name, flags, _) in SAMPLERS.items():
        if _matches(scheduler, cls_name, flags):
            return sampler
    cls_name = type(scheduler).__name__
    rows = [f"{s}: {dict(f) or 'defaults'}" for s, (c, f, _) in SAMPLERS.items() if c == cls_name]
    raise BadInput(f"No A1111 sampler matches this {cls_name}. "
                   + (f"A1111 samplers on it: {'; '.join(rows)}." if rows else
                      f"Valid samplers: {', '.join(names())}."))


def _schedule_of(scheduler, sampler: str) -> str:
    """The A1111 schedule type that `scheduler`'s flags select."""
    accepted = _accepted(type(scheduler))
    for flag, value, schedule in _SCHEDULE_SIGNS:
        if flag in accepted and scheduler.config.get(flag) == value:
            return schedule
    return SAMPLERS[sampler][2] or AUTOMATIC
