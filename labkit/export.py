"""Write diffusers components as one A1111/ComfyUI single file (the original LDM/SGM key layout).

diffusers reads these files (`diffusers.loaders.single_file_utils`) but has no writer; this module is the
inverse of its readers. Each `*_to_ldm` function renames one component's state dict; `to_single_file` joins
them under the prefixes a layout uses, and `save_single_file` writes the result with safetensors.
"""

from dataclasses import dataclass
from pathlib import Path

from .errors import BadInput
from .families import CHECKPOINT_LAYOUTS, UNET_PREFIX, VAE_PREFIX

# UNet: top-level diffusers modules -> LDM modules (absent ones are simply unused)
UNET_TOP = {
    "conv_in": "input_blocks.0.0",
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",  # SDXL: pooled text + size/crop embeddings
    "add_embedding.linear_2": "label_emb.0.2",
    "class_embedding.linear_1": "label_emb.0.0",  # class_embed_type "timestep" / "projection"
    "class_embedding.linear_2": "label_emb.0.2",
    "class_embedding": "label_emb",  # num_class_embeds: an nn.Embedding
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
# names inside one ResnetBlock2D: diffusers -> LDM ResBlock (UNet) / ResnetBlock (VAE)
UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
VAE_TOP = {
    "encoder.conv_in": "encoder.conv_in",
    "encoder.conv_norm_out": "encoder.norm_out",
    "encoder.conv_out": "encoder.conv_out",
    "decoder.conv_in": "decoder.conv_in",
    "decoder.conv_norm_out": "decoder.norm_out",
    "decoder.conv_out": "decoder.conv_out",
    "quant_conv": "quant_conv",
    "post_quant_conv": "post_quant_conv",
}
# inside one CLIP encoder layer: HF -> OpenCLIP resblock (q/k/v are handled apart: concatenated)
OPEN_CLIP_LAYER = {
    "layer_norm1": "ln_1",
    "self_attn.out_proj": "attn.out_proj",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}

# block classes whose LDM layout is known (the only ones SD1/SD2/SDXL use)
UNET_DOWN_BLOCKS = ("CrossAttnDownBlock2D", "DownBlock2D")
UNET_UP_BLOCKS = ("CrossAttnUpBlock2D", "UpBlock2D")
UNET_MID_BLOCKS = ("UNetMidBlock2DCrossAttn",)
UNET_ATTENTIONS = ("Transformer2DModel",)
VAE_BLOCKS = ("DownEncoderBlock2D", "UpDecoderBlock2D", "UNetMidBlock2D")


def _check_class(module, allowed, where):
    """Refuse a block whose LDM layout labkit does not know, instead of writing a file nothing can read."""
    name = type(module).__name__
    if name not in allowed:
        raise BadInput(f"{where} is a {name}; a single file can only hold {', '.join(allowed)} here.")


def _rename_inside(name, renames):
    """'conv_shortcut.weight' -> 'skip_connection.weight' using a table of module renames."""
    for old, new in renames.items():
        if name.startswith(old + "."):
            return new + name[len(old) :]
    return name


def apply_plan(state, plan, what):
    """Rename every key of `state` through `plan` {diffusers module: (LDM module, renames)}.

    The deepest planned module containing a key wins. A key no module claims is an error, so no weight is
    ever dropped silently."""
    out = {}
    for key, tensor in state.items():
        parts = key.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            module = ".".join(parts[:cut])
            if module in plan:
                ldm_module, renames = plan[module]
                new_key = ldm_module + "." + _rename_inside(".".join(parts[cut:]), renames)
                break
        else:
            raise BadInput(f"{what}: the weight {key!r} has no place in a single-file checkpoint.")
        if new_key in out:
            raise BadInput(f"{what}: two weights would both be written as {new_key!r}.")
        out[new_key] = tensor
    return out


@dataclass(frozen=True)
class Place:
    """Where one diffusers weight lives in a single file: the file's key and how the file holds it: "same",
    "conv1x1" (a linear weight stored as a 1x1 convolution), "transposed", or "rows" (block `part` of `parts`
    equal blocks of rows: OpenCLIP's q, k and v in one `in_proj`)."""

    key: str
    how: str = "same"
    part: int = 0
    parts: int = 1


def unet_plan(unet):
    """{diffusers module: (LDM module, renames)}, with block indices counted from the model itself."""
    plan = encoder_plan(unet)
    index = 0  # each output block: resnet at .0, attention at .1, upsampler after them (last one of a level)
    for b, block in enumerate(unet.up_blocks):
        _check_class(block, UNET_UP_BLOCKS, f"up_blocks.{b}")
        attentions = getattr(block, "attentions", None) or []
        for j in range(len(block.resnets)):
            plan[f"up_blocks.{b}.resnets.{j}"] = (f"output_blocks.{index}.0", UNET_RESNET)
            slot = 1
            if attentions:
                _check_class(attentions[j], UNET_ATTENTIONS, f"up_blocks.{b}.attentions.{j}")
                plan[f"up_blocks.{b}.attentions.{j}"] = (f"output_blocks.{index}.1", {})
                slot = 2
            if block.upsamplers and j == len(block.resnets) - 1:
                plan[f"up_blocks.{b}.upsamplers.0.conv"] = (f"output_blocks.{index}.{slot}.conv", {})
            index += 1
    return plan


def encoder_plan(model):
    """The plan of a UNet's top modules, down blocks and middle block: all of a UNet that a ControlNet copies."""
    plan = {diffusers: (ldm, {}) for diffusers, ldm in UNET_TOP.items()}

    index = 1  # input_blocks.0 is conv_in; each resnet(+attention) and each downsampler takes one index
    for b, block in enumerate(model.down_blocks):
        _check_class(block, UNET_DOWN_BLOCKS, f"down_blocks.{b}")
        attentions = getattr(block, "attentions", None) or []
        for j in range(len(block.resnets)):
            plan[f"down_blocks.{b}.resnets.{j}"] = (f"input_blocks.{index}.0", UNET_RESNET)
            if attentions:
                _check_class(attentions[j], UNET_ATTENTIONS, f"down_blocks.{b}.attentions.{j}")
                plan[f"down_blocks.{b}.attentions.{j}"] = (f"input_blocks.{index}.1", {})
            index += 1
        if block.downsamplers:
            plan[f"down_blocks.{b}.downsamplers.0.conv"] = (f"input_blocks.{index}.0.op", {})
            index += 1

    mid = model.mid_block
    _check_class(mid, UNET_MID_BLOCKS, "mid_block")
    plan["mid_block.resnets.0"] = ("middle_block.0", UNET_RESNET)
    for k, attention in enumerate(mid.attentions):  # middle_block: resnet, attention, resnet[, attention, resnet]
        _check_class(attention, UNET_ATTENTIONS, f"mid_block.attentions.{k}")
        plan[f"mid_block.attentions.{k}"] = (f"middle_block.{2 * k + 1}", {})
        plan[f"mid_block.resnets.{k + 1}"] = (f"middle_block.{2 * k + 2}", UNET_RESNET)
    return plan


def unet_places(unet) -> dict:
    """{diffusers key: Place} of a UNet2DConditionModel (any SD1/SD2/SDXL-style config), under
    `model.diffusion_model.`."""
    names = {key: key for key in unet.state_dict()}  # only names: no tensor is touched
    return {key: Place(UNET_PREFIX + ldm) for ldm, key in apply_plan(names, unet_plan(unet), "UNet").items()}


def unet_to_ldm(unet):
    """A UNet2DConditionModel's weights under `model.diffusion_model.*` names (any SD1/SD2/SDXL-style config)."""
    return ldm_state(unet, unet_places(unet))


def _vae_plan(vae):
    """{diffusers module: (LDM module, renames)} for an AutoencoderKL."""
    plan = {diffusers: (ldm, {}) for diffusers, ldm in VAE_TOP.items()}
    for b, block in enumerate(vae.encoder.down_blocks):
        _check_class(block, VAE_BLOCKS, f"encoder.down_blocks.{b}")
        for j in range(len(block.resnets)):
            plan[f"encoder.down_blocks.{b}.resnets.{j}"] = (f"encoder.down.{b}.block.{j}", VAE_RESNET)
        plan[f"encoder.down_blocks.{b}.downsamplers.0.conv"] = (f"encoder.down.{b}.downsample.conv", {})

    levels = len(vae.decoder.up_blocks)
    for b, block in enumerate(vae.decoder.up_blocks):  # diffusers counts up from the deepest level, LDM from 0
        _check_class(block, VAE_BLOCKS, f"decoder.up_blocks.{b}")
        level = levels - 1 - b
        for j in range(len(block.resnets)):
            plan[f"decoder.up_blocks.{b}.resnets.{j}"] = (f"decoder.up.{level}.block.{j}", VAE_RESNET)
        plan[f"decoder.up_blocks.{b}.upsamplers.0.conv"] = (f"decoder.up.{level}.upsample.conv", {})

    for part in ("encoder", "decoder"):
        _check_class(getattr(vae, part).mid_block, VAE_BLOCKS, f"{part}.mid_block")
        plan[f"{part}.mid_block.resnets.0"] = (f"{part}.mid.block_1", VAE_RESNET)
        plan[f"{part}.mid_block.attentions.0"] = (f"{part}.mid.attn_1", VAE_ATTENTION)
        plan[f"{part}.mid_block.resnets.1"] = (f"{part}.mid.block_2", VAE_RESNET)
    return plan


def vae_places(vae) -> dict:
    """{diffusers key: Place} of an AutoencoderKL under `first_stage_model.`. The mid-block attention's q/k/v/proj_out
    are 1x1 convolutions in LDM, (C, C, 1, 1) as the original files hold them (diffusers' reader squeezes them)."""
    state = vae.state_dict()
    renamed = apply_plan({key: key for key in state}, _vae_plan(vae), "VAE")
    return {key: Place(VAE_PREFIX + ldm, "conv1x1" if ".mid.attn_1." in ldm and ldm.endswith(".weight")
                       and state[key].ndim == 2 else "same") for ldm, key in renamed.items()}


def vae_to_ldm(vae):
    """An AutoencoderKL's weights under `first_stage_model.*` names."""
    return ldm_state(vae, vae_places(vae))


def clip_places(text_encoder, prefix) -> dict:
    """{diffusers key: Place} of a HF CLIPTextModel (CLIP-L) under `prefix + "text_model."`, as SD1 and SDXL's first
    encoder store it."""
    keys = text_encoder.state_dict()
    if any(key.removeprefix("text_model.") == "text_projection.weight" for key in keys):
        raise BadInput(
            "This text encoder has a text_projection, which the CLIP-L slot of a single file cannot hold; "
            "export it with open_clip_to_ldm (an OpenCLIP slot) instead."
        )
    return {key: Place(f"{prefix}text_model.{key.removeprefix('text_model.')}") for key in keys}


def clip_to_ldm(text_encoder, prefix):
    """A HF CLIPTextModel (CLIP-L) under `prefix + "text_model.*"`."""
    return ldm_state(text_encoder, clip_places(text_encoder, prefix))


def open_clip_places(text_encoder, prefix) -> dict:
    """{diffusers key: Place} of a HF CLIP text model in OpenCLIP layout under `prefix` (SD2's encoder, SDXL's
    CLIP-G). q, k and v are rows of one `attn.in_proj_*`; `text_projection` is stored as (width, proj_dim), the
    transpose of HF's linear weight, because OpenCLIP computes `x @ text_projection`. transformers >= 5.6 flattened
    CLIPTextModel; CLIPTextModelWithProjection still wraps it in `text_model`: both are found."""
    nested = {key.removeprefix("text_model."): key for key in text_encoder.state_dict()}
    nested.pop("embeddings.position_ids", None)  # a buffer, not a weight (older transformers saved it)
    places = {"embeddings.token_embedding.weight": Place(prefix + "token_embedding.weight"),
              "embeddings.position_embedding.weight": Place(prefix + "positional_embedding"),  # (77, width)
              "final_layer_norm.weight": Place(prefix + "ln_final.weight"),
              "final_layer_norm.bias": Place(prefix + "ln_final.bias")}
    for i in range(text_encoder.config.num_hidden_layers):
        src, dst = f"encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            for part, p in enumerate("qkv"):
                places[f"{src}self_attn.{p}_proj.{kind}"] = Place(f"{dst}attn.in_proj_{kind}", "rows", part, 3)
            for hf, open_clip in OPEN_CLIP_LAYER.items():
                places[f"{src}{hf}.{kind}"] = Place(f"{dst}{open_clip}.{kind}")
    if "text_projection.weight" in nested:
        places["text_projection.weight"] = Place(prefix + "text_projection", "transposed")
    unplaced = sorted(set(nested) - set(places))
    if unplaced:
        raise BadInput(f"OpenCLIP export: no place for the weights {unplaced[:5]}.")
    return {nested[key]: place for key, place in places.items()}


def open_clip_to_ldm(text_encoder, prefix):
    """A HF CLIP text model in OpenCLIP layout under `prefix` (see `open_clip_places`)."""
    return ldm_state(text_encoder, open_clip_places(text_encoder, prefix))


def to_file(tensor, place: Place):
    """A diffusers weight as the file holds it (one block of rows for "rows": join them with `assemble`)."""
    if place.how == "conv1x1":
        return tensor[:, :, None, None]  # (C, C) -> (C, C, 1, 1)
    if place.how == "transposed":
        return tensor.T
    return tensor


def from_file(tensor, place: Place):
    """The inverse of `to_file`: a file's tensor (for "rows", already the block of rows) as diffusers holds it."""
    if place.how == "conv1x1":
        return tensor[:, :, 0, 0]
    if place.how == "transposed":
        return tensor.T
    return tensor


def assemble(sources):
    """One file tensor from its [(diffusers tensor, Place)] (several for "rows", in any order)."""
    import torch

    if len(sources) == 1 and sources[0][1].how != "rows":
        return to_file(*sources[0])
    ordered = sorted(sources, key=lambda source: source[1].part)
    if [place.part for _, place in ordered] != list(range(ordered[0][1].parts)):
        raise BadInput(f"{ordered[0][1].key}: the weights that make it up are incomplete.")
    return torch.cat([tensor for tensor, _ in ordered])


def file_shape(sources) -> tuple:
    """The shape `assemble(sources)` will have, without building it."""
    tensor, place = sources[0]
    shape = tuple(tensor.shape)
    if place.how == "conv1x1":
        return shape + (1, 1)
    if place.how == "transposed":
        return shape[::-1]
    if place.how == "rows":
        return (sum(t.shape[0] for t, _ in sources),) + shape[1:]
    return shape


def file_sources(model, places: dict) -> dict:
    """{file key: [(tensor, Place)]} of one model: the model's own tensors, grouped by the file key they make."""
    state = model.state_dict()
    grouped = {}
    for key, place in places.items():
        grouped.setdefault(place.key, []).append((state[key], place))
    return grouped


def ldm_state(model, places: dict) -> dict:
    """{file key: tensor} of one model (views of its weights where the file holds them as they are)."""
    return {key: assemble(sources) for key, sources in file_sources(model, places).items()}


def _check_layout(components, layout):
    """Fail early, naming the problem, when components do not fit the requested layout."""
    if layout not in CHECKPOINT_LAYOUTS:
        raise BadInput(f"Unknown layout {layout!r}; use one of {', '.join(CHECKPOINT_LAYOUTS)}.")
    wanted = ["unet", "vae"] + [slot.component for slot in CHECKPOINT_LAYOUTS[layout].slots]
    missing = [name for name in wanted if components.get(name) is None]
    if missing:
        raise BadInput(f"The {layout!r} layout needs the components {', '.join(missing)}.")
    if layout == "sdxl-refiner" and components.get("text_encoder") is not None:
        raise BadInput("The 'sdxl-refiner' layout holds only text_encoder_2 (OpenCLIP-G); pass text_encoder=None.")
    is_sdxl_unet = components["unet"].config.get("addition_embed_type") == "text_time"
    if is_sdxl_unet != CHECKPOINT_LAYOUTS[layout].xl_unet:
        kind = "an SDXL" if is_sdxl_unet else "a non-SDXL"
        raise BadInput(f"The UNet is {kind} UNet but the layout is {layout!r}; pick the layout of its family.")


def places(components, layout) -> dict:
    """{component: {diffusers key: Place}} for every weight a single file of `layout` holds: the one map between
    labkit's components and the original key layout, used to write files and to read original weights back."""
    _check_layout(components, layout)
    found = {"unet": unet_places(components["unet"]), "vae": vae_places(components["vae"])}
    spec = CHECKPOINT_LAYOUTS[layout]
    for slot in spec.slots:
        model = components[slot.component]
        if slot.kind == "clip":
            found[slot.component] = clip_places(model, slot.prefix)
        else:
            found[slot.component] = open_clip_places(model, slot.prefix)
            if spec.xl_unet and "text_projection" not in {p.key.removeprefix(slot.prefix)
                                                          for p in found[slot.component].values()}:
                raise BadInput(f"SDXL's {slot.component} needs a text projection: use a CLIPTextModelWithProjection.")
    return found


def all_sources(components, layout) -> dict:
    """{file key: [(tensor, Place)]} of a whole single file of `layout`, tensors still the components' own."""
    out = {}
    for component, component_places in places(components, layout).items():
        out.update(file_sources(components[component], component_places))
    return out


def to_single_file(components, layout):
    """All weights of `components` (unet, vae, text_encoder[, text_encoder_2]) in one LDM/SGM state dict.

    layout: "sd1", "sd2", "sdxl" or "sdxl-refiner". Other entries (tokenizers, scheduler...) are ignored.
    Tensors come back on the CPU, contiguous and unshared (a whole copy of the model: `save_single_file` writes
    without one)."""
    import torch

    return {key: assemble(sources).detach().to("cpu").clone(memory_format=torch.contiguous_format)
            for key, sources in all_sources(components, layout).items()}


def save_single_file(components, layout, path, metadata=None, overwrite=False):
    """Write `components` as one A1111/ComfyUI .safetensors file at `path`; returns the path.

    Tensor by tensor: the memory it needs beyond the model is the largest tensor. Refuses to replace an existing
    file unless overwrite=True. Writes a temporary file in the same folder and renames it into place, so a failure
    never leaves a half-written checkpoint."""
    from .files import Entry, save_safetensors_streamed

    path = Path(path)
    if path.exists() and not overwrite:
        raise BadInput(f"{path} already exists; pass overwrite=True to replace it.")
    if metadata is not None and not all(isinstance(v, str) for v in metadata.values()):
        raise BadInput("safetensors metadata values must all be strings.")
    entries = [Entry(key, sources[0][0].dtype, file_shape(sources), lambda sources=sources: assemble(sources))
               for key, sources in all_sources(components, layout).items()]
    return save_safetensors_streamed(entries, path, metadata, overwrite=overwrite)
