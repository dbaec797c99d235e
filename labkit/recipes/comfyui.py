"""Reading ComfyUI's API graph (the PNG tEXt `prompt`: node id -> {class_type, inputs}).

The recipe is the first sampling stage of the chain whose image reaches the SaveImage node; values are followed
through links to primitive nodes, prompts through conditioning joins, the model through LoRA loaders. The UI graph
(`workflow`) is not read.
"""

from collections import deque

from .. import samplers
from ..errors import BadInput, UnsupportedFile
from .infotext import lora_tag, number
from .recipe import (Recipe, as_text, float_or_none, json_object, make_params, map_fields, model_stem, require_core,
                     to_float, to_int)

# ComfyUI API graph: node classes labkit follows
COMFY_SAMPLER_NODES = ("KSampler", "KSamplerAdvanced")
COMFY_OUTPUTS = ("SaveImage", "PreviewImage")  # preferred in this order
COMFY_SAMPLER_FIELDS = {"seed": ("seed", to_int), "noise_seed": ("seed", to_int), "steps": ("steps", to_int),
                        "cfg": ("cfg", to_float)}
COMFY_LATENT_FIELDS = {"width": ("width", to_int), "height": ("height", to_int), "batch_size": ("batch_size", to_int)}
COMFY_CHECKPOINTS = {"CheckpointLoaderSimple": "ckpt_name", "CheckpointLoader": "ckpt_name",
                     "unCLIPCheckpointLoader": "ckpt_name", "UNETLoader": "unet_name"}
COMFY_LORAS = ("LoraLoader", "LoraLoaderModelOnly")
COMFY_TEXTS = {"CLIPTextEncode": ("text",), "CLIPTextEncodeSDXLRefiner": ("text",),
               "CLIPTextEncodeSDXL": ("text_g", "text_l")}
# conditioning joins -> (inputs, A1111 prompt syntax with the same meaning)
COMFY_JOINS = {"ConditioningCombine": (("conditioning_1", "conditioning_2"), " AND "),
               "ConditioningConcat": (("conditioning_to", "conditioning_from"), " BREAK ")}
COMFY_LATENT_SOURCES = {"EmptyLatentImage": "txt2img", "EmptySD3LatentImage": "txt2img",
                        "VAEEncode": "img2img", "VAEEncodeForInpaint": "inpaint"}
COMFY_LATENT_INPUTS = ("samples", "latent", "latent_image", "latents")  # how latents pass through other nodes
# LatentUpscale / LatentUpscaleBy methods -> A1111's latent upscaler of the same interpolation (ComfyUI never
# antialiases; "area" and "bislerp" have no A1111 twin)
COMFY_LATENT_UPSCALERS = {"bilinear": "Latent", "bicubic": "Latent (bicubic)",
                          "nearest-exact": "Latent (nearest-exact)"}
COMFY_VALUE_INPUTS = ("value", "seed", "noise_seed", "int", "float", "number", "text", "string", "Text", "prompt")
COMFY_MAX_DEPTH = 64  # conditioning nodes followed at most (the graph is checked for cycles first)


def is_comfy_graph(data: dict) -> bool:
    """Whether a JSON object is a ComfyUI API graph (nodes with a class_type)."""
    return any(isinstance(node, dict) and "class_type" in node for node in data.values())


def comfy_names(sampler_name, scheduler, notes: list) -> dict:
    """A1111's sampler and schedule for ComfyUI's names (Fooocus uses them too); unknown ones kept, noted."""
    if sampler_name is None:
        notes.append("No sampler given: labkit's default sampler is used.")
        return {}
    try:
        sampler, schedule = samplers.from_comfy(str(sampler_name), str(scheduler or "normal"))
    except BadInput as error:
        notes.append(f"Sampler {sampler_name!r} with scheduler {scheduler!r} kept as written: {error}")
        return {"sampler": str(sampler_name), "schedule": str(scheduler or samplers.AUTOMATIC)}
    if sampler in samplers.UNSUPPORTED:
        notes.append(f"labkit cannot run {sampler!r}: {samplers.UNSUPPORTED[sampler]}.")
    return {"sampler": sampler, "schedule": schedule}


def _comfy_graph(data: dict) -> dict:
    """node id -> {"class_type", "inputs"}; entries that are not nodes are dropped."""
    graph = {}
    for key, node in data.items():
        if isinstance(node, dict) and isinstance(node.get("class_type"), str):
            inputs = node.get("inputs")
            graph[str(key)] = {"class_type": node["class_type"], "inputs": inputs if isinstance(inputs, dict) else {}}
    return graph


def _is_link(value) -> bool:
    """Whether an input value has the shape of a link: [node_id, output_index]."""
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))
            and not isinstance(value[0], bool) and isinstance(value[1], int) and not isinstance(value[1], bool))


def _link(graph: dict, value) -> str | None:
    """The node id an input refers to ([node_id, output_index]), or None for a plain value or a missing node."""
    if _is_link(value):
        node = str(value[0])
        return node if node in graph else None
    return None


def _dangling(graph: dict) -> list[str]:
    """"node 3 'positive' -> 99" for every input that links to a node the graph does not have."""
    return [f"node {node} {key!r} -> {value[0]}" for node, entry in graph.items()
            for key, value in entry["inputs"].items() if _is_link(value) and str(value[0]) not in graph]


def _inputs_of(graph: dict, node: str) -> list[str]:
    """The nodes `node` takes inputs from, in input order."""
    links = (_link(graph, value) for value in graph[node]["inputs"].values())
    return [link for link in links if link is not None]


def _find_cycle(graph: dict) -> list[str] | None:
    """A list of node ids that feed each other in a loop, or None (iterative depth-first search)."""
    state = {}  # node -> "open" while on the path, "done" after
    for start in graph:
        if start in state:
            continue
        state[start] = "open"
        path = [(start, iter(_inputs_of(graph, start)))]
        while path:
            node, pending = path[-1]
            child = next(pending, None)
            if child is None:
                state[node] = "done"
                path.pop()
            elif state.get(child) == "open":
                ids = [n for n, _ in path]
                return ids[ids.index(child):] + [child]
            elif child not in state:
                state[child] = "open"
                path.append((child, iter(_inputs_of(graph, child))))
    return None


def _upstream(graph: dict, start: str) -> list[str]:
    """Every node that `start` depends on, nearest first (breadth-first)."""
    seen, order, queue = {start}, [], deque([start])
    while queue:
        for child in _inputs_of(graph, queue.popleft()):
            if child not in seen:
                seen.add(child)
                order.append(child)
                queue.append(child)
    return order


def _node_key(node: str):
    """Sort key: numeric ids by number, then the rest by name."""
    return (0, int(node), node) if node.isdecimal() and len(node) < 20 else (1, 0, node)


def _final_sampler(graph: dict, notes: list) -> str:
    """The sampler whose latents reach the saved image: the nearest sampler upstream of a SaveImage (else a
    PreviewImage) node, the highest-numbered output first; without outputs, the last sampler of the graph."""
    found = [n for n, node in graph.items() if node["class_type"] in COMFY_SAMPLER_NODES]
    if not found:
        custom = sorted({node["class_type"] for node in graph.values() if "Sampler" in node["class_type"]})
        extra = f" (it has {', '.join(custom)}, which labkit does not read)" if custom else ""
        raise UnsupportedFile(f"The ComfyUI graph has no KSampler or KSamplerAdvanced node{extra}, so it holds "
                              "no recipe labkit can read.")
    outputs = sorted((n for n, node in graph.items() if node["class_type"] in COMFY_OUTPUTS), key=_node_key,
                     reverse=True)
    outputs.sort(key=lambda n: COMFY_OUTPUTS.index(graph[n]["class_type"]))
    for output in outputs:
        nearest = next((n for n in _upstream(graph, output) if graph[n]["class_type"] in COMFY_SAMPLER_NODES), None)
        if nearest is not None:
            if len(found) > 1:
                notes.append(f"The graph has {len(found)} sampler nodes; read the chain ending in node {nearest}, "
                             f"whose image reaches {graph[output]['class_type']} node {output}.")
            return nearest
    feeding = {n for other in found for n in _upstream(graph, other)}
    last = max([n for n in found if n not in feeding] or found, key=_node_key)
    notes.append(f"No SaveImage or PreviewImage node shows a sampler's image: read the last sampler, node {last}.")
    return last


def _comfy_value(graph: dict, value, hops: int = 8):
    """A plain input value, following links to value nodes (primitives, seed and text nodes) a few hops."""
    for _ in range(hops):
        node = _link(graph, value)
        if node is None:
            return value
        inputs = graph[node]["inputs"]
        value = next((inputs[key] for key in COMFY_VALUE_INPUTS if key in inputs), None)
    return None


def _comfy_chain(graph: dict, final: str) -> tuple[list[str], dict]:
    """The sampler stages ending in `final`, first first, and where their latents begin: {mode, node, masked}."""
    stages, source, seen = [final], {"mode": None, "node": None, "masked": False}, {final}
    node = _link(graph, graph[final]["inputs"].get("latent_image"))
    while node is not None and node not in seen:
        seen.add(node)
        cls, inputs = graph[node]["class_type"], graph[node]["inputs"]
        if cls in COMFY_LATENT_SOURCES:
            source.update(mode=COMFY_LATENT_SOURCES[cls], node=node)
            break
        if cls in COMFY_SAMPLER_NODES:
            stages.insert(0, node)
        source["masked"] |= cls == "SetLatentNoiseMask"
        node = next((link for key in COMFY_LATENT_INPUTS if (link := _link(graph, inputs.get(key)))), None)
    return stages, source


def _comfy_text(graph: dict, value, notes: list, unmapped: dict, depth: int = 0) -> str | None:
    """The prompt text behind a conditioning input: text encoders, joined by Combine (A1111 "AND") and Concat
    ("BREAK"); other conditioning nodes are passed through with a note."""
    node = _link(graph, value)
    if node is None or depth > COMFY_MAX_DEPTH:
        return None
    cls, inputs = graph[node]["class_type"], graph[node]["inputs"]
    if cls in COMFY_TEXTS:
        texts = [_comfy_value(graph, inputs.get(key)) for key in COMFY_TEXTS[cls]]
        texts = [text for text in texts if isinstance(text, str)]
        if len(texts) == 2 and texts[0] != texts[1] and texts[1]:
            unmapped[f"text_l (node {node})"] = texts[1]
            notes.append(f"{cls} node {node} has different text_g and text_l: params.prompt is text_g; "
                         "text_l is in unmapped.")
        return texts[0] if texts else None
    if cls in COMFY_JOINS:
        keys, joiner = COMFY_JOINS[cls]
        parts = [_comfy_text(graph, inputs.get(key), notes, unmapped, depth + 1) for key in keys]
        parts = [part for part in parts if part]
        notes.append(f"{cls} node {node} joins two prompts: written with A1111's{joiner}which means the same.")
        return joiner.join(parts) if parts else None
    if cls == "ConditioningZeroOut":
        return ""
    side = "negative" if value[1] == 1 else "positive"
    onward = inputs.get("conditioning", inputs.get(side))
    if _link(graph, onward) is None:
        notes.append(f"The prompt comes from a {cls} node ({node}) that labkit does not read.")
        return None
    notes.append(f"{cls} node {node} on the conditioning path is not reproduced by labkit.")
    return _comfy_text(graph, onward, notes, unmapped, depth + 1)


def _comfy_clip_skip(graph: dict, value) -> int | None:
    """A1111's Clip skip from a CLIPSetLastLayer node upstream of a text encoder (stop_at_clip_layer -2 -> 2)."""
    start = _link(graph, value)
    if start is None:
        return None
    for node in _upstream(graph, start):
        if graph[node]["class_type"] == "CLIPSetLastLayer":
            layer = float_or_none(_comfy_value(graph, graph[node]["inputs"].get("stop_at_clip_layer")))
            return int(-layer) if layer is not None and layer <= -1 and layer.is_integer() else None
    return None


def _comfy_model(graph: dict, value, notes: list) -> tuple[str, list[dict]]:
    """(checkpoint name, LoRAs nearest the checkpoint first) behind a sampler's `model` input."""
    name, loras, seen = "", [], set()
    node = _link(graph, value)
    while node is not None and node not in seen:
        seen.add(node)
        cls, inputs = graph[node]["class_type"], graph[node]["inputs"]
        if cls in COMFY_CHECKPOINTS:
            name = model_stem(_comfy_value(graph, inputs.get(COMFY_CHECKPOINTS[cls])))
            break
        if cls in COMFY_LORAS:
            lora = {"name": model_stem(_comfy_value(graph, inputs.get("lora_name"))),
                    "weight": float_or_none(_comfy_value(graph, inputs.get("strength_model"))), "hash": None}
            clip = float_or_none(_comfy_value(graph, inputs.get("strength_clip"))) if cls == "LoraLoader" else 0.0
            if clip is not None and clip != lora["weight"]:  # applied as <lora:name:te_weight:unet_weight>
                lora["te_weight"] = clip
            loras.insert(0, lora)
        elif _link(graph, inputs.get("model")) is not None:
            notes.append(f"{cls} node {node} on the model path is not reproduced by labkit.")
        node = _link(graph, inputs.get("model"))
    return name, loras


def _comfy_handoff(graph: dict, first: str) -> float | None:
    """switch_at when the first stage is a KSamplerAdvanced that stops early for a refiner (end_at_step < steps)."""
    inputs = graph[first]["inputs"]
    if graph[first]["class_type"] != "KSamplerAdvanced":
        return None
    end = float_or_none(_comfy_value(graph, inputs.get("end_at_step")))
    steps = float_or_none(_comfy_value(graph, inputs.get("steps")))
    return end / steps if end is not None and steps and 0 < end < steps else None


def _comfy_stages(graph: dict, stages: list, values: dict, model: dict, unmapped: dict, notes: list) -> None:
    """Later stages: a KSamplerAdvanced refiner handoff becomes switch_at + model["refiner"]; any other second
    pass (hires fix) goes to `unmapped`."""
    handoff = _comfy_handoff(graph, stages[0])
    for position, node in enumerate(stages[1:], start=2):
        inputs = graph[node]["inputs"]
        if handoff is not None and position == 2:
            values["switch_at"] = handoff
            refiner, _ = _comfy_model(graph, inputs.get("model"), [])
            if refiner and refiner != model.get("name"):
                model["refiner"] = refiner
            notes.append(f"Refiner handoff at {number(handoff)} of the steps (node {stages[0]} -> node {node}"
                         f"{', ' + refiner if refiner else ''}): pass refiner=labkit.open(...) to txt2img.")
            continue
        if position == 2 and _comfy_hires(graph, stages[0], node, values, notes):
            continue
        summary = {key: _comfy_value(graph, inputs.get(key))
                   for key in ("seed", "noise_seed", "steps", "cfg", "sampler_name", "scheduler", "denoise")
                   if key in inputs}
        unmapped[f"stage {position} (node {node})"] = as_text(summary)
        notes.append(f"Sampler node {node} runs a second pass over the first one's image (a hires fix); labkit's "
                     "recipe is the first pass, the second is in unmapped.")


def _comfy_hires(graph: dict, first: str, second: str, values: dict, notes: list) -> bool:
    """A second KSampler (denoise < 1, the first one's seed) over the first one's latents upscaled by LatentUpscaleBy
    or LatentUpscale: A1111's hires fix with a latent upscaler, written into `values`. False for anything else."""
    inputs = graph[second]["inputs"]
    node = _link(graph, inputs.get("latent_image"))
    if graph[second]["class_type"] != "KSampler" or node is None:
        return False
    up = graph[node]["inputs"]
    method = COMFY_LATENT_UPSCALERS.get(_comfy_value(graph, up.get("upscale_method")))
    denoise = float_or_none(_comfy_value(graph, inputs.get("denoise")))
    same_seed = _comfy_value(graph, inputs.get("seed")) == _comfy_value(graph, graph[first]["inputs"].get("seed"))
    if (_link(graph, up.get("samples")) != first or method is None or not same_seed or denoise is None
            or not 0 < denoise < 1 or graph[node]["class_type"] not in ("LatentUpscaleBy", "LatentUpscale")):
        return False
    hires = {"hires": True, "hires_upscaler": method, "strength": denoise,
             "hires_steps": to_int(_comfy_value(graph, inputs.get("steps")))}
    if graph[node]["class_type"] == "LatentUpscaleBy":
        hires["hires_scale"] = float(_comfy_value(graph, up.get("scale_by")))
    else:
        hires["hires_resize_x"] = to_int(_comfy_value(graph, up.get("width")))
        hires["hires_resize_y"] = to_int(_comfy_value(graph, up.get("height")))
    names = comfy_names(_comfy_value(graph, inputs.get("sampler_name")), _comfy_value(graph, inputs.get("scheduler")),
                        notes)
    hires["hires_sampler"] = names.get("sampler", "") if names.get("sampler") != values.get("sampler") else ""
    hires["hires_schedule"] = names.get("schedule", "") if names.get("schedule") != values.get("schedule") else ""
    cfg = float_or_none(_comfy_value(graph, inputs.get("cfg")))
    hires["hires_cfg"] = cfg if cfg is not None and cfg != values.get("cfg") else None
    values.update(hires)
    notes.append(f"Sampler node {second} redraws the first pass's latents upscaled by {graph[node]['class_type']} "
                 f"(node {node}): read as A1111's hires fix ({method}, denoise {number(denoise)}).")
    return True


def parse_comfyui(data) -> Recipe:
    """A Recipe from a ComfyUI API graph (the `prompt` PNG chunk).

    The recipe is the first sampling stage of the chain whose image reaches the SaveImage node: a base/refiner
    KSamplerAdvanced pair becomes switch_at, a latent-upscaled second pass becomes A1111's hires fix, any other
    second pass goes to `unmapped`.
    UnsupportedFile for graphs without a KSampler / KSamplerAdvanced node or with a cycle.
    """
    raw = json_object(data, "ComfyUI graph")
    graph = _comfy_graph(raw)
    cycle = _find_cycle(graph)
    if cycle:
        raise UnsupportedFile(f"The ComfyUI graph is not a valid API graph: nodes {' -> '.join(cycle)} feed each "
                              "other in a loop.")
    notes, unmapped = [], {}
    dangling = _dangling(graph)
    if dangling:
        notes.append(f"The graph links to nodes it does not hold ({'; '.join(dangling[:5])}"
                     f"{'; ...' if len(dangling) > 5 else ''}): a partial or damaged export. What those links would "
                     "give is left at labkit's defaults (an empty prompt, the default sampler...).")
    stages, source = _comfy_chain(graph, _final_sampler(graph, notes))
    first = graph[stages[0]]["inputs"]
    scalars = {key: _comfy_value(graph, value) for key, value in first.items()}
    values = {"noise": "comfy"}
    values.update(comfy_names(scalars.pop("sampler_name", None), scalars.pop("scheduler", None), notes))
    map_fields(scalars, COMFY_SAMPLER_FIELDS, values, unmapped, notes)
    denoise = float_or_none(scalars.get("denoise"))
    if denoise is not None and 0 < denoise < 1:
        values["strength"] = denoise
    start = float_or_none(scalars.get("start_at_step"))
    if start:  # KSamplerAdvanced skipping its first steps: ComfyUI's other way to keep part of an input image
        unmapped["start_at_step"] = as_text(scalars["start_at_step"])
        notes.append(f"The sampler starts at step {number(start)}: labkit's nearest setting is strength = "
                     "(steps - start_at_step) / steps with img2img.")
    if source["mode"] == "txt2img":
        latent = {key: _comfy_value(graph, value) for key, value in graph[source["node"]]["inputs"].items()}
        map_fields(latent, COMFY_LATENT_FIELDS, values, unmapped, notes)
    mode = "inpaint" if source["masked"] else source["mode"] or "txt2img"
    if source["mode"] is None:
        notes.append("The first sampler's latents come from no EmptyLatentImage or VAEEncode node: size unknown.")
    for side in ("prompt", "negative_prompt"):
        link = first.get("positive" if side == "prompt" else "negative")
        text = _comfy_text(graph, link, notes, unmapped)
        values[side] = text if text is not None else ""
        if text is None and _is_link(link) and _link(graph, link) is None:
            notes.append(f"The {side.replace('_', ' ')} links to node {link[0]}, which is not in the graph: it is "
                         "left empty.")
    clip_skip = _comfy_clip_skip(graph, first.get("positive"))
    if clip_skip:
        values["clip_skip"] = clip_skip
    name, loras = _comfy_model(graph, first.get("model"), notes)
    model = {"name": name} if name else {}
    values["model"] = name
    notes += [f"LoRA {lora['name']} (LoraLoader): {lora_tag(lora)} applies it in labkit." for lora in loras]
    _comfy_stages(graph, stages, values, model, unmapped, notes)
    require_core(values, "ComfyUI graph")
    return Recipe(params=make_params(values, unmapped, notes), tool="ComfyUI", unmapped=unmapped, raw=raw, notes=notes,
                  loras=loras, model=model, mode=mode)

