"""The ControlNet step: a forward pre-hook on the UNet that runs each active unit's ControlNet on the UNet's own
inputs and hands the weighted residuals to the UNet (`down_block_additional_residuals`,
`mid_block_additional_residual`, the arguments diffusers' ControlNet pipelines use). Done as a hook, the same
txt2img / img2img / inpaint pipelines of every layout run ControlNet, with A1111's step rule and control modes,
which diffusers' pipelines do not have."""

from dataclasses import dataclass

from .units import active, layer_scales, uncond_gets_control


@dataclass
class Prepared:
    """A unit ready to run: its ControlNet, its control map as a tensor (1, 3, H, W) in [0, 1], its settings."""

    controlnet: object
    control: object
    weight: float
    start: float
    end: float
    mode: str
    xl: bool = False  # SDXL's layout: the extension's soft scales are cut short there (see units.layer_scales)
    title: str = ""  # "name [hash]", for notes


class ControlHook:
    """Adds the residuals of the `units` active at the current sampling step of `total` steps (an int, or a
    function asked at the first UNet call, when the pipeline has set its timesteps). `cfg`: the batch holds the
    negative-prompt half first, as diffusers' pipelines build it. `order`: the sampler's model calls per step.

    The step a call counts as is A1111's: its `sampling_step` is updated by the sampler's callback after the
    first model call of each step, so a call of step k counts as step max(k - 1, 0), and a second-order
    sampler's second call as k. Over the UNet's calls c = 0, 1, 2... of the loop (each call is one model
    evaluation, both halves of the guidance batch at once) that is max(c - 1, 0) // order; the hook counts them."""

    def __init__(self, units: list, total, cfg: bool, order: int = 1):
        self.units, self.total, self.cfg, self.order = units, total, cfg, order
        self.calls, self.total_steps = 0, None
        self.steps_run = [0] * len(units)  # model calls each unit acted in

    @property
    def step(self) -> int:
        """The sampling step the next UNet call counts as, by A1111's rule."""
        return max(self.calls - 1, 0) // self.order

    def attach(self, unet):
        """Hook `unet`; returns the handle whose `remove()` takes the hook off."""
        return unet.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, unet, args, kwargs):
        sample = args[0] if args else kwargs["sample"]  # (B, C, h, w); C = 9 for an inpainting UNet
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        context = args[2] if len(args) > 2 else kwargs["encoder_hidden_states"]
        if self.total_steps is None:
            self.total_steps = self.total() if callable(self.total) else self.total
        step, self.calls = self.step, self.calls + 1
        down_total, mid_total = None, None
        for k, unit in enumerate(self.units):
            if unit.weight == 0 or not active(step, self.total_steps, unit.start, unit.end):
                continue
            down, mid = self._residuals(unit, sample[:, :4], timestep, context, kwargs.get("added_cond_kwargs"))
            self.steps_run[k] += 1
            down_total = down if down_total is None else [a + b for a, b in zip(down_total, down)]
            mid_total = mid if mid_total is None else mid_total + mid
        if down_total is None:
            return args, kwargs
        kwargs = dict(kwargs, down_block_additional_residuals=tuple(down_total),
                      mid_block_additional_residual=mid_total)
        return args, kwargs

    def _residuals(self, unit: Prepared, x, timestep, context, added):
        """The unit's residuals (down list, mid), each scaled as its control mode says, zero for the negative half
        of the batch when the mode keeps the control off it."""
        batch = x.shape[0]
        control = unit.control.to(x.device, x.dtype).expand(batch, -1, -1, -1)  # (B, 3, H, W)
        extra = {"added_cond_kwargs": added} if added is not None else {}
        balanced = unit.mode == "Balanced"  # one scale for all: the ControlNet applies it itself
        down, mid = unit.controlnet(x, timestep, encoder_hidden_states=context, controlnet_cond=control,
                                    conditioning_scale=unit.weight if balanced else 1.0, return_dict=False, **extra)
        if not balanced:
            scales = layer_scales(unit.mode, unit.weight, len(down) + 1, unit.xl)
            down, mid = [d * s for d, s in zip(down, scales)], mid * scales[-1]
        if self.cfg and not uncond_gets_control(unit.mode):
            keep = x.new_ones(batch, 1, 1, 1)
            keep[: batch // 2] = 0  # (B, 1, 1, 1): the negative prompt's rows get no control
            down, mid = [d * keep for d in down], mid * keep
        return down, mid
