// PictureGrid (labkit/ui/pictures.py): a batch's pictures as a grid; click one to pick it (`selected` goes back
// to Python). DropZone (same file): drop or choose a picture file; its bytes go to Python as a message buffer.

function grid({ model, el }) {
  el.classList.add("labkit-pictures");
  const draw = () => {
    el.replaceChildren();
    const selected = model.get("selected"), size = model.get("size");
    model.get("pictures").forEach((src, i) => {
      const figure = document.createElement("figure");
      figure.className = "labkit-picture" + (i === selected ? " labkit-selected" : "");
      const img = document.createElement("img");
      img.src = src;
      img.width = size;
      img.title = (model.get("captions")[i] || "") + " (click to pick)";
      figure.appendChild(img);
      figure.addEventListener("click", () => {
        model.set("selected", i);
        model.save_changes();
      });
      el.appendChild(figure);
    });
  };
  model.on("change:pictures change:selected change:captions change:size", draw);
  draw();
}

function drop({ model, el }) {
  el.classList.add("labkit-dropzone");
  el.textContent = model.get("label");
  const input = document.createElement("input");
  input.type = "file";
  input.accept = "image/*";
  input.style.display = "none";
  el.appendChild(input);
  const send = async (file) => {
    if (!file) return;
    // send(content, callbacks, buffers): the bytes go as the third argument
    model.send({ event: "file", name: file.name }, undefined, [await file.arrayBuffer()]);
  };
  el.addEventListener("click", () => input.click());
  input.addEventListener("change", () => send(input.files[0]));
  el.addEventListener("dragover", (e) => { e.preventDefault(); el.classList.add("labkit-dragging"); });
  el.addEventListener("dragleave", () => el.classList.remove("labkit-dragging"));
  el.addEventListener("drop", (e) => {
    e.preventDefault();
    el.classList.remove("labkit-dragging");
    send(e.dataTransfer.files[0]);
  });
}

export default {
  render(context) {
    (context.model.get("kind") === "drop" ? drop : grid)(context);
  },
};
