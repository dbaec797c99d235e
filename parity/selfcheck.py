"""Known facts the tool side must reproduce, so that a wrong harness is caught before it writes fixtures.

The facts come from the tools' source (see /work/notes/parity-spec.md, sections 1-3) and are checked on the
rendered cases: start scales, schedules, UNet timesteps and call counts, img2img slicing, determinism, and that
labkit's noise is the tool's own first draw. render.py calls check_a1111 / check_comfy in each worker and
check_cross in the parent; each returns [{"name", "ok", "detail"}].
"""
import json
import math
import sys
from pathlib import Path

import cases as C
import numpy as np
import torch

SIGMA_MAX, SIGMA_MIN = 14.614642, 0.0291675  # spec section 0 (A1111; ComfyUI 14.614641)


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


class Checks(list):
    def add(self, name, ok, detail):
        self.append({"name": name, "ok": bool(ok), "detail": detail})


def _find(records, **kw):
    hits = [r for r in records.values() if all(r[k] == v for k, v in kw.items())]
    assert len(hits) == 1, (kw, len(hits))
    return hits[0]


def _common(ch, out, records):
    bad = [r["key"] for r in records.values() if not r["tool_noise_equals_labkit_noise"]]
    ch.add("initial noise", not bad, f"the tool's own first draw for seed {C.SEED} equals labkit's exported noise "
           f"bit for bit in {len(records) - len(bad)}/{len(records)} cases")
    finite = all(np.isfinite(v).all() for v in out.values())
    ch.add("finite latents", finite, f"{len(out)} latents, all finite" if finite else "NaN/inf in a latent")


def _sources_used(ch, sources: Path, trees):
    """Every file imported from the tools' trees lies inside the paths setup_env.sh verified against the commits."""
    verified = json.loads((sources / "SOURCES.json").read_text())
    used, outside = 0, []
    for m in list(sys.modules.values()):
        f = getattr(m, "__file__", None)
        if not f:
            continue
        f = Path(f).resolve()
        for tree in trees:
            root = (sources / tree).resolve()
            if root in f.parents:
                rel = f.relative_to(root).as_posix()
                used += 1
                if not any(rel == p or rel.startswith(p + "/") for p in verified[tree]["verified"]):
                    outside.append(f"{tree}/{rel}")
    ch.add("sources used", used > 0 and not outside,
           f"{used} files imported from {', '.join(trees)}, all inside the commit-verified paths"
           if not outside else f"imported from unverified paths: {outside}")


def check_a1111(tool, out, records, args, info):
    ch = Checks()
    _common(ch, out, records)
    _sources_used(ch, args.sources, ["a1111", "k-diffusion"])
    den = tool.kd.external.CompVisDenoiser(tool.shared.sd_model)
    smax, smin = float(den.sigmas[-1]), float(den.sigmas[0])
    ch.add("sigma range", abs(smax - SIGMA_MAX) < 1e-5 and abs(smin - SIGMA_MIN) < 1e-6,
           f"CompVisDenoiser sigma_max {smax:.6f}, sigma_min {smin:.7f} (spec: {SIGMA_MAX}, {SIGMA_MIN})")
    lat = lambda r: out[f"{r['file']}::{r['key']}"]
    n = C.STEPS
    for tool_name, want in (("a1111", smax), ("a1111-sgm", math.sqrt(1 + smax ** 2))):
        r = _find(records, model="toy", mode="txt2img", tool=tool_name, sampler="Euler", schedule="Karras", steps=n)
        ch.add(f"{tool_name} Euler/Karras start", abs(r["start_factor"] / want - 1) < 1e-6 and r["start_residual"] < 1e-6,
               f"start = {r['start_factor']:.6f} x noise (want {want:.6f}: "
               f"{'sqrt(1 + sigma_max^2)' if tool_name == 'a1111-sgm' else 'sigma_max'})")
        t = torch.tensor(r["sigmas"][:-1])
        want_t = den.sigma_to_t(t).tolist()
        ch.add(f"{tool_name} Euler/Karras UNet t", np.allclose(r["unet_timesteps"], want_t, atol=1e-3)
               and r["unet_timesteps"][0] == 999.0 and any(v != round(v) for v in r["unet_timesteps"]),
               f"fractional t = sigma_to_t(sigma): {[round(v, 2) for v in r['unet_timesteps']]}")
    for sampler, implied in (("Euler", "Uniform"), ("DPM++ 2M", "Karras"), ("DPM2", "Karras"),
                             ("DPM++ 2M SDE", "Exponential"), ("Euler a", "Uniform")):
        a = _find(records, model="toy", mode="txt2img", tool="a1111", sampler=sampler, schedule="Automatic", steps=n)
        b = _find(records, model="toy", mode="txt2img", tool="a1111", sampler=sampler, schedule=implied, steps=n)
        ch.add(f"a1111 {sampler}/Automatic = {implied}", np.array_equal(lat(a), lat(b)),
               "A1111's Automatic resolves through the sampler's option (sd_samplers_kdiffusion.py): same latent")
    for steps in (n, n + 1):
        grid = list(range(0, 1000, 1000 // steps))
        want = [min(v + 1, 999) for v in grid][1:][::-1]
        r = _find(records, model="toy", mode="txt2img", tool="a1111", sampler="DDIM", steps=steps)
        ch.add(f"a1111 DDIM {steps} steps", r["unet_evaluations"] == len(grid) - 1 and r["unet_timesteps"] == want,
               f"{r['unet_evaluations']} UNet evaluations at t = {r['unet_timesteps']} (spec: every grid t except 1)")
        p = _find(records, model="toy", mode="txt2img", tool="a1111", sampler="PLMS", steps=steps)
        ch.add(f"a1111 PLMS {steps} steps", p["unet_evaluations"] == len(grid),
               f"{p['unet_evaluations']} evaluations = DDIM's + 1 (the pseudo improved Euler first step)")
        u = _find(records, model="toy", mode="txt2img", tool="a1111", sampler="UniPC", steps=steps)
        ch.add(f"a1111 UniPC {steps} steps", u["unet_evaluations"] == len(grid) and u["unet_timesteps"][0] == 999.0,
               f"{u['unet_evaluations']} evaluations (= len(range(0, 1000, 1000 // N))), "
               f"t = {[round(v, 2) for v in u['unet_timesteps']]}")
        d = _find(records, model="toy", mode="txt2img", tool="a1111", sampler="DPM2", schedule="Karras", steps=steps)
        full = tool.kd.sampling.get_sigmas_karras(steps + 1, smin, smax)
        want_s = torch.cat([full[:-2], full[-1:]])
        ch.add(f"a1111 DPM2/Karras {steps} steps", np.allclose(d["sigmas"], want_s.tolist(), rtol=1e-6),
               f"Karras of {steps + 1} with the penultimate sigma dropped ({len(d['sigmas']) - 1} steps)")
    r = _find(records, model="toy", mode="img2img", tool="a1111", sampler="Euler", schedule="Karras", steps=n)
    t_enc = int(min(C.STRENGTH, 0.999) * n)
    full = tool.kd.sampling.get_sigmas_karras(n, smin, smax)[n - t_enc - 1:]
    ch.add("a1111 img2img Euler/Karras", np.allclose(r["sigmas"], full.tolist(), rtol=1e-6)
           and r["unet_evaluations"] == t_enc + 1,
           f"strength {C.STRENGTH}, {n} steps: t_enc {t_enc}, {r['unet_evaluations']} steps from sigma "
           f"{r['sigmas'][0]:.4f} (schedule index {n - t_enc - 1})")
    r = _find(records, model="toy", mode="img2img", tool="a1111", sampler="DDIM", steps=n)
    ch.add("a1111 img2img DDIM", r["unet_evaluations"] == t_enc - 1,
           f"{r['unet_evaluations']} evaluations (t_enc - 1), at t = {r['unet_timesteps']}")
    # determinism: render two cases again (a deterministic and a stochastic one)
    import render
    from unets import Recorder, load_unet

    tool.set_model(Recorder(load_unet("toy", args.work, info["toy"]["unet_fingerprint"])))
    inp = render.inputs("toy")
    for sampler, schedule in (("Euler", "Karras"), ("Euler a", "Karras")):
        r = _find(records, model="toy", mode="txt2img", tool="a1111", sampler=sampler, schedule=schedule, steps=n)
        again = tool.run(sampler, schedule, n, torch.tensor(inp["cond"]), torch.tensor(inp["uncond"]), seed=C.SEED,
                         shape=tuple(inp["noise"].shape[1:]))["latent"].numpy()
        ch.add(f"a1111 {sampler}/{schedule} repeatable", np.array_equal(again, lat(r)), "a second render is bit-identical")
    return ch


def check_comfy(tool, out, records, args, info):
    ch = Checks()
    _common(ch, out, records)
    _sources_used(ch, args.sources, ["comfyui"])
    lat = lambda r: out[f"{r['file']}::{r['key']}"]
    n = C.STEPS
    import render
    from unets import Recorder, load_unet

    rec = Recorder(load_unet("toy", args.work, info["toy"]["unet_fingerprint"]))
    patcher = tool.wrapped(rec)
    ms = patcher.model.model_sampling
    smax = float(ms.sigma_max)
    ch.add("sigma range", abs(smax - 14.614641) < 1e-5, f"model_sampling.sigma_max {smax:.6f} (spec: 14.614641)")
    r = _find(records, model="toy", mode="txt2img", tool="comfy", sampler="Euler", schedule="Karras", steps=n)
    want = math.sqrt(1 + smax ** 2)
    ch.add("comfy euler/karras start", abs(r["start_factor"] / want - 1) < 1e-6 and r["start_residual"] < 1e-6,
           f"start = {r['start_factor']:.6f} x noise (want sqrt(1 + sigma_max^2) = {want:.6f}: max_denoise)")
    t_near = ms.timestep(torch.tensor(r["sigmas"][:-1])).float().tolist()
    ch.add("comfy euler/karras UNet t", r["unet_timesteps"] == t_near and all(v == round(v) for v in t_near),
           f"nearest training t: {r['unet_timesteps']}")
    r = _find(records, model="toy", mode="txt2img", tool="comfy", sampler="DDIM", schedule="DDIM", steps=n)
    ch.add("comfy ddim/ddim_uniform start", abs(r["start_factor"] / r["sigmas"][0] - 1) < 1e-6,
           f"start = sigma0 x noise = {r['start_factor']:.4f} (sigma0 < sigma_max: not max_denoise); "
           f"{len(r['sigmas']) - 1} steps for N = {n}")
    for s in ("uni_pc", "dpm_2"):
        r = _find(records, model="toy", mode="txt2img", tool="comfy", sampler_tool=s, schedule="Karras", steps=n)
        full = tool.sigmas_of(patcher, "euler", "karras", n + 1)
        ch.add(f"comfy {s}/karras sigmas", np.allclose(r["sigmas"], torch.cat([full[:-2], full[-1:]]).tolist()),
               "Karras of N+1 with the penultimate sigma dropped (DISCARD_PENULTIMATE_SIGMA_SAMPLERS)")
    r = _find(records, model="toy", mode="img2img", tool="comfy", sampler="Euler", schedule="Karras", steps=n)
    m = int(n / C.STRENGTH)
    full = tool.sigmas_of(patcher, "euler", "karras", m)[-(n + 1):]
    ch.add("comfy img2img euler/karras", np.allclose(r["sigmas"], full.tolist()) and r["unet_evaluations"] == n,
           f"denoise {C.STRENGTH}: the last {n} steps of a {m}-step schedule, from sigma {r['sigmas'][0]:.4f}")
    for schedule in C.SCHEDULES:
        if C.SCHEDULES[schedule] is None:
            continue
        a = _find(records, model="toy", mode="txt2img", tool="comfy", sampler="DDIM", schedule=schedule, steps=n)
        b = _find(records, model="toy", mode="txt2img", tool="comfy", sampler="Euler", schedule=schedule, steps=n)
        if not np.array_equal(lat(a), lat(b)):
            ch.add("comfy ddim = euler", False, f"differs with {schedule}")
            break
    else:
        ch.add("comfy ddim = euler", True, "sampler_object('ddim') is ksampler('euler'): same latent for every scheduler")
    inp = render.inputs("toy")
    for sampler, scheduler in (("euler", "karras"), ("euler_ancestral", "karras")):
        r = _find(records, model="toy", mode="txt2img", tool="comfy", sampler_tool=sampler, schedule="Karras", steps=n)
        again = tool.run(patcher, rec, sampler, scheduler, n, torch.tensor(inp["cond"]), torch.tensor(inp["uncond"]),
                         seed=C.SEED, size=C.SIZE)["latent"].numpy()
        ch.add(f"comfy {sampler}/{scheduler} repeatable", np.array_equal(again, lat(r)), "a second render is bit-identical")
    # ComfyUI's own UNet (openaimodel) against the wrapped diffusers UNet, on the full-size case
    if any(r["model"] == "sd15" for r in records.values()):
        del patcher, rec
        unet = load_unet("sd15", args.work, info["sd15"]["unet_fingerprint"])
        own_rec = Recorder(None)
        own = tool.own_from_diffusers(unet, own_rec)
        del unet
        inp = render.inputs("sd15")
        for sampler, schedule in (("Euler", "Karras"),):
            r = _find(records, model="sd15", tool="comfy", sampler=sampler, schedule=schedule, steps=C.SD15_STEPS)
            o = tool.run(own, own_rec, r["sampler_tool"], r["schedule_tool"], C.SD15_STEPS, torch.tensor(inp["cond"]),
                         torch.tensor(inp["uncond"]), seed=C.SEED, size=C.SIZE)
            t_own = [t for t, b in o["calls"] for _ in range(b)][::2]
            err = _rel(o["latent"].numpy(), lat(r))
            ch.add(f"comfy own UNet sd15 {sampler}/{schedule}", err < 1e-3 and t_own == r["unet_timesteps"],
                   f"ComfyUI's own UNetModel (load_diffusion_model_state_dict) vs the wrapped diffusers UNet: "
                   f"relative L2 {err:.2e}, same UNet timesteps")
    return ch


def check_cross(latents, records):
    """Facts between the tools (run in the parent on the merged results)."""
    ch = Checks()
    get = lambda r: latents[r["file"]][r["key"]]
    recs = {(r["file"], r["key"]): r for r in records}
    for sampler, schedule in (("Euler", "Karras"), ("Heun", "Karras"), ("Euler", "Normal")):
        a = _find(recs, model="toy", mode="txt2img", tool="a1111-sgm", sampler=sampler, schedule=schedule,
                  steps=C.STEPS)
        b = _find(recs, model="toy", mode="txt2img", tool="comfy", sampler=sampler, schedule=schedule, steps=C.STEPS)
        c = _find(recs, model="toy", mode="txt2img", tool="a1111", sampler=sampler, schedule=schedule, steps=C.STEPS)
        near, far = _rel(get(a), get(b)), _rel(get(c), get(b))
        ch.add(f"a1111-sgm vs comfy {sampler}/{schedule}", 0 < near < 2e-2 and near < far,
               f"same start and sigmas, fractional vs rounded UNet t: relative L2 {near:.2e} "
               f"(a1111 without SGM: {far:.2e})")
    return ch
