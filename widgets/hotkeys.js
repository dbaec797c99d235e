// Hotkeys (labkit/ui/hotkeys.py): Ctrl+Enter (Cmd+Enter on a Mac) anywhere in the enclosing panel asks Python to
// generate, as in AUTOMATIC1111's web UI. The panel is marked data-lm-suppress-shortcuts, so JupyterLab's own
// shortcuts (Ctrl+Enter runs the cell, Shift+Enter runs it and moves on) do not fire while typing in it.

export default {
  render({ model, el }) {
    el.classList.add("labkit-hotkeys");
    let root = null, frame = 0;
    const onKey = (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !event.repeat) {
        event.preventDefault();
        event.stopPropagation();
        model.send({ event: "generate" });
      }
    };
    const attach = () => {  // the panel's element exists once the whole widget tree is drawn
      root = el.closest(model.get("scope"));
      if (!root) {
        frame = requestAnimationFrame(attach);
        return;
      }
      root.setAttribute("data-lm-suppress-shortcuts", "true");
      root.addEventListener("keydown", onKey, true);
    };
    attach();
    return () => {
      cancelAnimationFrame(frame);
      if (root) root.removeEventListener("keydown", onKey, true);
    };
  },
};
