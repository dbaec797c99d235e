// MaskCanvas (labkit/ui/mask.py): paint a mask over a picture. Strokes are data in image pixels
// ({points: [[x, y], ...], size, erase}); the overlay rasterizes them by the same rule as Python's
// `rasterize`, so the overlay's alpha channel is the mask Python reads, pixel for pixel.
// Coordinates as on a canvas: (0, 0) is the top-left corner, pixel (i, j) covers [i, i+1) x [j, j+1).

const COLOR = [255, 48, 48]; // overlay color; its alpha is the mask value, CSS opacity makes it see-through

// ---- the shared rasterization rule (mirror of labkit.ui.mask.rasterize) -------------------------------
function paintSegment(mask, W, H, ax, ay, bx, by, r, value) {
  const x0 = Math.max(Math.floor(Math.min(ax, bx) - r), 0), x1 = Math.min(Math.ceil(Math.max(ax, bx) + r), W);
  const y0 = Math.max(Math.floor(Math.min(ay, by) - r), 0), y1 = Math.min(Math.ceil(Math.max(ay, by) + r), H);
  if (x0 >= x1 || y0 >= y1) return null;
  const dx = bx - ax, dy = by - ay, length2 = dx * dx + dy * dy;
  for (let y = y0; y < y1; y++) {
    const py = y + 0.5;
    for (let x = x0; x < x1; x++) {
      const px = x + 0.5;
      let u = length2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / length2 : 0;
      u = u < 0 ? 0 : u > 1 ? 1 : u;
      const ex = ax + u * dx - px, ey = ay + u * dy - py;
      if (ex * ex + ey * ey <= r * r) mask[y * W + x] = value;
    }
  }
  return [x0, y0, x1, y1];
}

function radiusOf(size) {
  return Math.max(size / 2, Math.SQRT1_2); // a 1-pixel brush never leaves gaps
}

// Paint segment k of a stroke (k = 0 for a single point): returns the touched box or null.
function paintStep(mask, W, H, stroke, k) {
  const pts = stroke.points, a = pts[Math.max(k - 1, 0)], b = pts[k];
  return paintSegment(mask, W, H, a[0], a[1], b[0], b[1], radiusOf(stroke.size), stroke.erase ? 0 : 255);
}

export function paintStroke(mask, W, H, stroke) {
  const n = stroke.points.length;
  for (let k = n > 1 ? 1 : 0; k < n; k++) paintStep(mask, W, H, stroke, k);
}

// (H * W) Uint8Array: the mask before inversion, strokes painted in order.
export function rasterize(strokes, W, H) {
  const mask = new Uint8Array(W * H);
  for (const stroke of strokes) paintStroke(mask, W, H, stroke);
  return mask;
}

// ---- the view ---------------------------------------------------------------------------------------
function el_(tag, className, props = {}) {
  const node = document.createElement(tag);
  node.className = className;
  return Object.assign(node, props);
}

function slider(className, label, min, max) {
  const input = el_("input", className, { type: "range", min, max, step: 1 });
  const value = el_("span", "labkit-mask-value");
  const wrap = el_("label", "labkit-mask-field");
  wrap.append(el_("span", "labkit-mask-label", { textContent: label }), input, value);
  return { wrap, input, value };
}

function render({ model, el }) {
  const root = el_("div", "labkit-mask");
  const bar = el_("div", "labkit-mask-toolbar");
  const brush = slider("labkit-mask-brush", "Brush", 1, 256);
  const feather = slider("labkit-mask-feather", "Feather", 0, 64);
  const button = (className, text, title) => el_("button", className, { type: "button", textContent: text, title });
  const eraser = button("labkit-mask-eraser", "Eraser", "Erase instead of paint");
  const undo = button("labkit-mask-undo", "Undo", "Drop the last stroke");
  const clear = button("labkit-mask-clear", "Clear", "Drop every stroke");
  const invert = button("labkit-mask-invert", "Invert", "Repaint what is not painted");
  bar.append(brush.wrap, eraser, undo, clear, invert, feather.wrap);

  const stage = el_("div", "labkit-mask-stage");
  const picture = el_("canvas", "labkit-mask-canvas");
  const overlay = el_("canvas", "labkit-mask-overlay");
  const cursor = el_("div", "labkit-mask-cursor");
  const empty = el_("div", "labkit-mask-empty", { textContent: "No picture yet: press \u201c\u2192 inpaint\u201d under a result, or upload a picture." });
  stage.append(picture, overlay, cursor);
  const note = el_("div", "labkit-mask-note");
  root.append(bar, stage, empty, note);
  el.append(root);

  const ctx = overlay.getContext("2d");
  let W = 0, H = 0, mask = null, pixels = null, drawing = null, imageToken = 0;

  const size = () => [model.get("image_width"), model.get("image_height")];
  const scale = () => model.get("display_width") / Math.max(W, 1); // CSS pixels per image pixel

  // Copy mask values in a box into the overlay (alpha = mask value, inverted if asked).
  function show(x0 = 0, y0 = 0, x1 = W, y1 = H) {
    if (!pixels || x0 >= x1 || y0 >= y1) return;
    const inverted = model.get("inverted"), data = pixels.data;
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        const i = y * W + x, m = inverted ? 255 - mask[i] : mask[i];
        data[4 * i] = COLOR[0]; data[4 * i + 1] = COLOR[1]; data[4 * i + 2] = COLOR[2]; data[4 * i + 3] = m;
      }
    }
    ctx.putImageData(pixels, 0, 0, x0, y0, x1 - x0, y1 - y0);
  }

  function redrawMask() {
    if (W < 1 || H < 1) return;
    mask = rasterize(model.get("strokes"), W, H);
    if (drawing) paintStroke(mask, W, H, drawing);
    show();
  }

  function layout() {
    [W, H] = size();
    const ok = W > 0 && H > 0;
    stage.hidden = !ok;
    empty.hidden = ok;
    if (!ok) return;
    for (const c of [picture, overlay]) {
      if (c.width !== W) c.width = W;
      if (c.height !== H) c.height = H;
    }
    stage.style.width = `${model.get("display_width")}px`;
    stage.style.height = `${(model.get("display_width") * H) / W}px`;
    pixels = ctx.createImageData(W, H);
    drawPicture();
    redrawMask();
    styleFeather();
  }

  function drawPicture() {
    const token = ++imageToken, pctx = picture.getContext("2d"), bytes = model.get("image_png");
    pctx.clearRect(0, 0, W, H);
    if (!bytes || bytes.byteLength === 0) return;
    const url = URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
    const img = new Image();
    img.onload = () => {
      if (token === imageToken) pctx.drawImage(img, 0, 0, W, H);
      URL.revokeObjectURL(url);
    };
    img.onerror = () => URL.revokeObjectURL(url);
    img.src = url;
  }

  function styleFeather() {
    const f = model.get("feather");
    overlay.style.filter = f > 0 ? `blur(${f * scale()}px)` : "none"; // CSS blur takes the Gaussian's sigma, as PIL
  }

  function syncToolbar() {
    brush.input.value = model.get("brush");
    brush.value.textContent = `${model.get("brush")} px`;
    feather.input.value = model.get("feather");
    feather.value.textContent = `${model.get("feather")} px`;
    eraser.setAttribute("aria-pressed", String(model.get("eraser")));
    invert.setAttribute("aria-pressed", String(model.get("inverted")));
    undo.disabled = clear.disabled = model.get("strokes").length === 0;
    note.textContent = model.get("note");
    note.hidden = !model.get("note");
  }

  const save = (name, value) => {
    model.set(name, value);
    model.save_changes();
  };

  // ---- painting --------------------------------------------------------------------------------------
  function toImage(event) {
    const rect = picture.getBoundingClientRect();
    const x = ((event.clientX - rect.left) * W) / rect.width, y = ((event.clientY - rect.top) * H) / rect.height;
    return [Math.round(x * 100) / 100, Math.round(y * 100) / 100];
  }

  function moveCursor(event) {
    const rect = picture.getBoundingClientRect(), d = (model.get("brush") * rect.width) / Math.max(W, 1);
    Object.assign(cursor.style, {
      width: `${d}px`, height: `${d}px`, display: "block",
      left: `${event.clientX - rect.left - d / 2}px`, top: `${event.clientY - rect.top - d / 2}px`,
    });
  }

  function extend(point) {
    const pts = drawing.points, last = pts[pts.length - 1];
    if (last && last[0] === point[0] && last[1] === point[1]) return;
    pts.push(point);
    const box = paintStep(mask, W, H, drawing, pts.length - 1);
    if (box) show(...box);
  }

  function onDown(event) {
    if (event.button !== 0 || W < 1 || H < 1) return;
    event.preventDefault();
    picture.setPointerCapture(event.pointerId);
    drawing = { points: [], size: model.get("brush"), erase: model.get("eraser") };
    extend(toImage(event));
  }

  function onMove(event) {
    moveCursor(event);
    if (drawing) extend(toImage(event));
  }

  function onUp(event) {
    if (!drawing) return;
    const stroke = drawing;
    drawing = null;
    if (picture.hasPointerCapture(event.pointerId)) picture.releasePointerCapture(event.pointerId);
    save("strokes", [...model.get("strokes"), stroke]);
  }

  function onCancel() {
    drawing = null;
    redrawMask();
  }

  picture.addEventListener("pointerdown", onDown);
  picture.addEventListener("pointermove", onMove);
  picture.addEventListener("pointerup", onUp);
  picture.addEventListener("pointercancel", onCancel);
  picture.addEventListener("pointerleave", () => (cursor.style.display = "none"));

  brush.input.addEventListener("input", () => save("brush", Number(brush.input.value)));
  feather.input.addEventListener("input", () => save("feather", Number(feather.input.value)));
  eraser.addEventListener("click", () => save("eraser", !model.get("eraser")));
  undo.addEventListener("click", () => save("strokes", model.get("strokes").slice(0, -1)));
  clear.addEventListener("click", () => save("strokes", []));
  invert.addEventListener("click", () => save("inverted", !model.get("inverted")));

  // ---- model -> view ---------------------------------------------------------------------------------
  const handlers = {
    "change:image_width change:image_height change:display_width": layout,
    "change:image_png": drawPicture,
    "change:strokes": () => { redrawMask(); syncToolbar(); },
    "change:inverted": () => { show(); syncToolbar(); },
    "change:feather": () => { styleFeather(); syncToolbar(); },
    "change:brush change:eraser change:note": syncToolbar,
  };
  for (const [events, handler] of Object.entries(handlers)) {
    for (const name of events.split(" ")) model.on(name, handler);
  }

  layout();
  syncToolbar();
  return () => {
    for (const [events, handler] of Object.entries(handlers)) {
      for (const name of events.split(" ")) model.off(name, handler);
    }
  };
}

export default { render };
