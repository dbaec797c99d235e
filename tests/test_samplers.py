"""labkit.samplers: A1111 names <-> real diffusers schedulers, built on an SD1 scheduler config (no weights)."""

import importlib.util
import inspect
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from labkit import samplers
from labkit.errors import BadInput

# diffusers 0.42 runs numpy functions on torch tensors, which numpy 2 flags (__array__, __array_wrap__) on every
# call: tens of thousands of warnings about diffusers, none about labkit
pytestmark = pytest.mark.filterwarnings("ignore:__array:DeprecationWarning")

# Stable Diffusion 1.5's scheduler_config.json
SD1_CONFIG = {
    "_class_name": "PNDMScheduler",
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "trained_betas": None,
    "steps_offset": 1,
    "clip_sample": False,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "prediction_type": "epsilon",
    "timestep_spacing": "leading",
}

HAS_TORCHSDE = importlib.util.find_spec("torchsde") is not None
HAS_SCIPY = importlib.util.find_spec("scipy") is not None


def missing_package(*keys):
    """The package a sampler/schedule needs that is not installed here, or None."""
    for key in keys:
        package = samplers.NEEDS.get(key, (None,))[0]
        if package and importlib.util.find_spec(package) is None:
            return package
    return None


def runnable_pairs():
    """Every (sampler, schedule) whose flags the diffusers class has, skipped where a package is missing here."""
    pairs = []
    for name in samplers.names():
        for schedule in samplers.schedules():
            if not _schedule_fits(name, schedule):
                continue
            package = missing_package(name, schedule)
            marks = [pytest.mark.skip(reason=f"{package} is not installed")] if package else []
            pairs.append(pytest.param(name, schedule, marks=marks, id=f"{name}|{schedule}"))
    return pairs


def _schedule_fits(name, schedule):
    """Whether the sampler's diffusers class has the schedule's flags, read from the class itself."""
    import diffusers

    cls_name = samplers.SAMPLERS[name][0]
    if missing_package(name):  # a placeholder class without its package: list it once, to be skipped
        return schedule == "Automatic"
    params = set(inspect.signature(getattr(diffusers, cls_name).__init__).parameters)
    if cls_name == "LCMScheduler":  # declares timestep_spacing/steps_offset but never reads them
        params -= {"timestep_spacing", "steps_offset"}
    wanted = samplers.SCHEDULES.get(samplers.canonical(name, schedule)[1], {})
    return set(wanted) <= params


def sd1_sigmas():
    """k-diffusion's view of SD1's noise levels, computed from the betas independently of diffusers."""
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    alphas_cumprod = np.cumprod(1.0 - betas)
    return np.sqrt((1 - alphas_cumprod) / alphas_cumprod)  # (1000,) sigma at t = 0..999


def run_loop(scheduler, steps=8):
    """A short denoising loop with a fake model; returns the final latent."""
    scheduler.set_timesteps(steps)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((1, 4, 8, 8), generator=generator) * scheduler.init_noise_sigma  # (B, 4, H/8, W/8)
    extra = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    for t in scheduler.timesteps:
        model_in = scheduler.scale_model_input(x, t)
        eps = 0.1 * model_in  # stands in for the UNet's noise prediction
        x = scheduler.step(eps, t, x, **extra).prev_sample
    return x


# --- the tables ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", samplers.names())
def test_every_sampler_builds_a_real_scheduler_with_its_default_schedule(name):
    package = missing_package(name, samplers.canonical(name)[1])
    if package:
        pytest.skip(f"{name} needs {package}, which is not installed")
    cls, flags = samplers.resolve(name)
    assert cls.__name__ == samplers.SAMPLERS[name][0]
    assert cls.__module__.startswith("diffusers.schedulers.scheduling_")  # a real class, not a dummy
    assert set(flags) <= set(inspect.signature(cls.__init__).parameters)
    scheduler = cls.from_config(SD1_CONFIG, **flags)
    assert all(scheduler.config[key] == value for key, value in flags.items())
    scheduler.set_timesteps(20)
    assert len(scheduler.timesteps) >= 20
    assert torch.isfinite(run_loop(scheduler)).all()


def test_the_tables_cover_the_reference_rows_and_the_unsupported_ones():
    assert samplers.names() == ["Euler", "Euler a", "LMS", "Heun", "DPM2", "DPM2 a", "DPM++ 2M", "DPM++ SDE",
                                "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE", "DDIM", "PLMS", "UniPC", "LCM"]
    assert {"DPM++ 2S a", "DPM fast", "DPM adaptive", "Restart"} <= set(samplers.UNSUPPORTED)
    assert samplers.schedules()[0] == "Automatic"
    assert {"Uniform", "Karras", "Exponential", "Beta", "SGM Uniform", "Simple", "Normal"} <= set(samplers.schedules())


def test_resolve_refuses_exactly_the_schedules_whose_flags_a_class_lacks():
    import diffusers

    for name in samplers.names():
        if missing_package(name):
            continue
        params = set(inspect.signature(getattr(diffusers, samplers.SAMPLERS[name][0]).__init__).parameters)
        for schedule in samplers.SCHEDULES:
            if missing_package(schedule):
                continue
            if _schedule_fits(name, schedule):
                _, flags = samplers.resolve(name, schedule)
                assert set(flags) <= params, (name, schedule)
            else:
                with pytest.raises(BadInput, match="does not support"):
                    samplers.resolve(name, schedule)


def test_flags_are_fresh_copies_of_the_table():
    _, flags = samplers.resolve("DPM++ 2M", "Karras")
    flags["solver_order"] = 99
    assert samplers.resolve("DPM++ 2M", "Karras")[1]["solver_order"] == 2
    assert samplers.SAMPLERS["DPM++ 2M"][1]["solver_order"] == 2


# --- schedule semantics --------------------------------------------------------------------------------------

def test_karras_changes_sigmas_and_matches_k_diffusion():
    uniform = samplers.make_scheduler("Euler", "Uniform", SD1_CONFIG)
    karras = samplers.make_scheduler("Euler", "Karras", SD1_CONFIG)
    uniform.set_timesteps(20)
    karras.set_timesteps(20)
    assert not torch.allclose(uniform.sigmas, karras.sigmas)

    sigmas = sd1_sigmas()
    sigma_min, sigma_max, rho = sigmas[0], sigmas[-1], 7.0
    ramp = np.linspace(0, 1, 20)
    expected = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    np.testing.assert_allclose(karras.sigmas[:-1].numpy(), expected, rtol=1e-4)
    for name in ("DPM++ 2M", "DPM2", "Heun"):  # the same sigmas on other classes
        scheduler = samplers.make_scheduler(name, "Karras", SD1_CONFIG)
        scheduler.set_timesteps(20)
        assert np.isclose(scheduler.sigmas[0].item(), sigma_max, rtol=1e-4), name


def test_exponential_matches_k_diffusion():
    scheduler = samplers.make_scheduler("Euler", "Exponential", SD1_CONFIG)
    scheduler.set_timesteps(20)
    sigmas = sd1_sigmas()
    expected = np.exp(np.linspace(np.log(sigmas[-1]), np.log(sigmas[0]), 20))
    np.testing.assert_allclose(scheduler.sigmas[:-1].numpy(), expected, rtol=1e-4)


def test_uniform_sgm_uniform_and_ddim_step_where_a1111_steps():
    uniform = samplers.make_scheduler("Euler", "Uniform", SD1_CONFIG)
    uniform.set_timesteps(20)
    np.testing.assert_allclose(uniform.timesteps.numpy(), np.linspace(999, 0, 20), atol=1e-3)  # get_sigmas(n)

    sgm = samplers.make_scheduler("Euler", "SGM Uniform", SD1_CONFIG)
    sgm.set_timesteps(20)
    np.testing.assert_allclose(sgm.timesteps.numpy(), np.linspace(999, 0, 21)[:-1], atol=1.0)

    ddim = samplers.make_scheduler("DDIM", "Automatic", SD1_CONFIG)
    ddim.set_timesteps(20)
    a1111_ddim = [t + 1 for t in range(0, 1000, 1000 // 20)][::-1]  # sd_samplers_timesteps.get_timesteps
    assert ddim.timesteps.tolist() == a1111_ddim


def test_schedule_flags_left_in_the_base_config_do_not_leak():
    karras = samplers.make_scheduler("DPM++ 2M", "Karras", SD1_CONFIG)
    assert karras.config.use_karras_sigmas is True
    euler = samplers.make_scheduler("Euler", "SGM Uniform", karras.config)
    assert euler.config.use_karras_sigmas is False
    assert euler.config.timestep_spacing == "trailing"
    unipc = samplers.make_scheduler("UniPC", "Automatic", SD1_CONFIG)
    assert unipc.config.final_sigmas_type == "sigma_min"
    euler = samplers.make_scheduler("Euler", "Automatic", unipc.config)
    euler.set_timesteps(20)
    assert euler.config.final_sigmas_type == "zero" and euler.sigmas[-1].item() == 0.0


def test_a_schedule_the_class_cannot_do_is_refused_not_dropped():
    with pytest.raises(BadInput, match="use_karras_sigmas.*DDIMScheduler"):
        samplers.resolve("DDIM", "Karras")
    with pytest.raises(BadInput, match="LCMScheduler"):
        samplers.resolve("LCM", "SGM Uniform")
    with pytest.raises(BadInput, match="no diffusers equivalent"):
        samplers.resolve("Euler", "Align Your Steps")


# --- names ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("combined, expected", [
    ("DPM++ 2M Karras", ("DPM++ 2M", "Karras")),
    ("DPM++ SDE Karras", ("DPM++ SDE", "Karras")),
    ("DPM2 a Karras", ("DPM2 a", "Karras")),
    ("DPM++ 2M SDE Exponential", ("DPM++ 2M SDE", "Exponential")),
    ("DPM++ 2M SDE Heun Karras", ("DPM++ 2M SDE Heun", "Karras")),
    ("LMS Karras", ("LMS", "Karras")),
    ("k_dpmpp_2m_ka", ("DPM++ 2M", "Karras")),
    ("k_dpmpp_3m_sde_exp", ("DPM++ 3M SDE", "Exponential")),
    ("dpm++ 2m karras", ("DPM++ 2M", "Karras")),
    ("DPM++ 2M SDE Heun", ("DPM++ 2M SDE Heun", None)),
    ("Euler a", ("Euler a", None)),
    ("DDIM", ("DDIM", None)),
])
def test_split_combined(combined, expected):
    assert samplers.split_combined(combined) == expected


def test_combined_names_resolve_like_separate_ones():
    assert samplers.resolve("DPM++ 2M Karras") == samplers.resolve("DPM++ 2M", "Karras")
    assert samplers.resolve("DPM2 a Karras", "Automatic") == samplers.resolve("DPM2 a", "Karras")
    assert samplers.resolve("DPM++ 2M SDE Exponential") == samplers.resolve("DPM++ 2M SDE", "Exponential")
    assert samplers.resolve("DPM++ 2M Karras", "Karras") == samplers.resolve("DPM++ 2M", "Karras")
    with pytest.raises(BadInput, match="already names the schedule"):
        samplers.resolve("DPM++ 2M Karras", "Exponential")
    with pytest.raises(BadInput, match="no diffusers equivalent"):
        samplers.resolve("DPM++ 2S a Karras")


@pytest.mark.parametrize("version, expected", [
    (None, "Karras"),
    ("v1.10.1", "Karras"),
    ("1.9.4", "Karras"),
    ("v1.9.0", "Karras"),
    ("f2.0.1v1.10.1-previous-669-gdfdcbab6", "Karras"),
    ("v1.8.0", "Uniform"),
    ("v1.6.0", "Uniform"),
    ("f0.0.17v1.8.0rc-latest-276-g29be1da7", "Uniform"),
])
def test_automatic_depends_on_the_version(version, expected):
    assert samplers.canonical("DPM++ SDE", "Automatic", version) == ("DPM++ SDE", expected)
    assert samplers.canonical("DPM++ SDE", None, version) == ("DPM++ SDE", expected)  # no Schedule type at all
    _, flags = samplers.resolve("DPM++ 2M", "Automatic", version)
    assert flags["use_karras_sigmas"] is (expected == "Karras")


def test_automatic_per_sampler_since_1_9():
    assert samplers.canonical("DPM++ 2M SDE") == ("DPM++ 2M SDE", "Exponential")
    assert samplers.canonical("DPM++ 3M SDE", version="v1.7.0") == ("DPM++ 3M SDE", "Uniform")
    assert samplers.canonical("Euler a", version="v1.7.0") == ("Euler a", "Uniform")
    assert samplers.canonical("DDIM", version="v1.5.1") == ("DDIM", "DDIM")
    assert samplers.canonical("LCM") == ("LCM", "Automatic")
    assert samplers.canonical("DPM++ 2M Karras", version="v1.6.0") == ("DPM++ 2M", "Karras")


def test_dpmpp_sde_needs_torchsde():
    if HAS_TORCHSDE:
        scheduler = samplers.make_scheduler("DPM++ SDE", "Automatic", SD1_CONFIG, version="v1.6.0")
        assert type(scheduler).__name__ == "DPMSolverSDEScheduler"
        assert scheduler.config.use_karras_sigmas is False
    else:
        with pytest.raises(BadInput, match="pip install torchsde"):
            samplers.make_scheduler("DPM++ SDE", "Karras", SD1_CONFIG)


def test_lms_and_beta_need_scipy():
    if HAS_SCIPY:
        assert type(samplers.make_scheduler("LMS", "Beta", SD1_CONFIG)).__name__ == "LMSDiscreteScheduler"
    else:
        with pytest.raises(BadInput, match="pip install scipy"):
            samplers.resolve("LMS")
        with pytest.raises(BadInput, match="pip install scipy"):
            samplers.resolve("Euler", "Beta")


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(BadInput) as error:
        samplers.resolve("Euler b")
    assert "Euler b" in str(error.value)
    assert all(name in str(error.value) for name in samplers.names())
    with pytest.raises(BadInput, match="Unknown schedule type 'Karas'.*Karras"):
        samplers.resolve("Euler", "Karas")


@pytest.mark.parametrize("name", sorted(samplers.UNSUPPORTED))
def test_unsupported_samplers_say_there_is_no_equivalent(name):
    with pytest.raises(BadInput, match=re.escape(name) + ".*no diffusers equivalent"):
        samplers.resolve(name)


def test_aliases_and_case():
    assert samplers.resolve("k_euler_a") == samplers.resolve("Euler a")
    assert samplers.resolve("k_euler_ancestral") == samplers.resolve("Euler a")
    assert samplers.resolve("k_dpmpp_2m", "karras") == samplers.resolve("DPM++ 2M", "Karras")
    assert samplers.resolve("  euler A ") == samplers.resolve("Euler a")
    assert samplers.resolve("dpmpp_2m_sde", "sgm_uniform") == samplers.resolve("DPM++ 2M SDE", "SGM Uniform")
    assert samplers.resolve("uni_pc", "ddim_uniform") == samplers.resolve("UniPC", "DDIM")
    assert samplers.resolve("Euler", "SGMUniform") == samplers.resolve("Euler", "SGM Uniform")


@pytest.mark.parametrize("comfy, a1111", [
    (("euler", "normal"), ("Euler", "Normal")),
    (("euler_ancestral", "karras"), ("Euler a", "Karras")),
    (("dpmpp_2m", "karras"), ("DPM++ 2M", "Karras")),
    (("dpmpp_2m_sde_gpu", "exponential"), ("DPM++ 2M SDE", "Exponential")),
    (("dpmpp_sde", "beta"), ("DPM++ SDE", "Beta")),
    (("dpmpp_3m_sde", "sgm_uniform"), ("DPM++ 3M SDE", "SGM Uniform")),
    (("ddim", "ddim_uniform"), ("DDIM", "DDIM")),
    (("uni_pc", "simple"), ("UniPC", "Simple")),
    (("lcm", "sgm_uniform"), ("LCM", "SGM Uniform")),
    (("heun", "normal"), ("Heun", "Normal")),
    (("dpm_2", "karras"), ("DPM2", "Karras")),
    (("dpm_2_ancestral", "karras"), ("DPM2 a", "Karras")),
    (("lms", "normal"), ("LMS", "Normal")),
    (("dpmpp_2s_ancestral", "normal"), ("DPM++ 2S a", "Normal")),  # named, though labkit cannot run it
])
def test_from_comfy(comfy, a1111):
    assert samplers.from_comfy(*comfy) == a1111


def test_from_comfy_refuses_names_without_an_a1111_equivalent():
    with pytest.raises(BadInput, match="euler_cfg_pp"):
        samplers.from_comfy("euler_cfg_pp", "normal")
    with pytest.raises(BadInput, match="linear_quadratic"):
        samplers.from_comfy("euler", "linear_quadratic")


def test_unreadable_version_is_refused():
    with pytest.raises(BadInput, match="version"):
        samplers.resolve("DPM++ 2M", "Automatic", version="nightly")


# --- eta -----------------------------------------------------------------------------------------------------

def test_eta_is_checked_against_what_diffusers_can_do():
    assert type(samplers.make_scheduler("DDIM", "Automatic", SD1_CONFIG, eta=0.5)).__name__ == "DDIMScheduler"
    samplers.make_scheduler("Euler a", "Automatic", SD1_CONFIG, eta=1.0)
    with pytest.raises(BadInput, match="full noise"):
        samplers.make_scheduler("Euler a", "Automatic", SD1_CONFIG, eta=0.5)
    with pytest.raises(BadInput, match="no eta"):
        samplers.make_scheduler("Euler", "Automatic", SD1_CONFIG, eta=0.3)


# --- reading names back --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, schedule", runnable_pairs())
def test_round_trip(name, schedule):
    scheduler = samplers.make_scheduler(name, schedule, SD1_CONFIG)
    assert torch.isfinite(run_loop(scheduler, steps=20)).all()
    assert samplers.a1111_name(scheduler) == samplers.canonical(name, schedule)
    if schedule != "Automatic":
        assert samplers.a1111_name(scheduler) == (name, schedule)


@pytest.mark.parametrize("name, schedule", runnable_pairs())
def test_names_are_read_from_flags_alone(name, schedule):
    cls, flags = samplers.resolve(name, schedule)
    scheduler = cls.from_config(SD1_CONFIG, **flags)  # not made by labkit: nothing recorded in its config
    same_flags = {"Normal": "Uniform", "Simple": "SGM Uniform"}
    sampler, resolved = samplers.canonical(name, schedule)
    assert samplers.a1111_name(scheduler) == (sampler, same_flags.get(resolved, resolved))


def test_a_stale_record_is_not_trusted():
    made = samplers.make_scheduler("Euler", "Normal", SD1_CONFIG)
    import diffusers

    changed = diffusers.EulerDiscreteScheduler.from_config(made.config, use_karras_sigmas=True)
    assert changed.config["_labkit_schedule"] == "Normal"  # the record travelled with the config
    assert samplers.a1111_name(changed) == ("Euler", "Karras")


def test_foreign_schedulers():
    import diffusers

    assert samplers.a1111_name(diffusers.PNDMScheduler.from_config(SD1_CONFIG)) == ("PLMS", "DDIM")
    dpm = diffusers.DPMSolverMultistepScheduler.from_config(SD1_CONFIG, use_karras_sigmas=True)
    assert samplers.a1111_name(dpm) == ("DPM++ 2M", "Karras")
    with pytest.raises(BadInput, match="UniPC: .*solver_order"):
        samplers.a1111_name(diffusers.UniPCMultistepScheduler.from_config(SD1_CONFIG))  # order 2, bh2
    with pytest.raises(BadInput, match="No A1111 sampler"):
        samplers.a1111_name(diffusers.DDPMScheduler.from_config(SD1_CONFIG))


# --- import cost ---------------------------------------------------------------------------------------------

def test_import_does_not_load_torch_or_diffusers():
    code = "import sys, labkit.samplers; print(sorted({'torch', 'diffusers'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
