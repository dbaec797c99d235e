"""Small helpers shared by the panels: PNG bytes for image widgets, safe callbacks, text summaries."""

import html
import io
import traceback


def png(image) -> bytes:
    """PNG bytes of a PIL image (b"" for None), for `ipywidgets.Image.value`."""
    if image is None:
        return b""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def image_widget(width: int = 256):
    """An Image widget showing a transparent placeholder until a picture arrives (no broken-image icon)."""
    import ipywidgets as w
    from PIL import Image

    return w.Image(value=png(Image.new("RGBA", (1, 1), (0, 0, 0, 0))), format="png",
                   layout=w.Layout(width=f"{width}px", min_height="32px"))


def show_error(output, error: BaseException) -> None:
    """Print `error` (labkit errors: just the message; others: the traceback) into an `Output` widget."""
    from ..errors import LabkitError

    text = f"{type(error).__name__}: {error}" if isinstance(error, LabkitError) else "".join(
        traceback.format_exception(type(error), error, error.__traceback__))
    output.append_stderr(text + "\n")


def guarded(output, function):
    """`function` wrapped so that an exception lands in `output` instead of the kernel log (for callbacks)."""

    def call(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Exception as error:  # a panel callback must never break the panel
            show_error(output, error)
            return None

    return call


def with_summary(bundle, lines: list[str]) -> dict:
    """A widget's mime bundle plus a readable text/plain and text/html summary, for headless runs (papermill,
    nbconvert, a plain script) where no front end draws the widget."""
    bundle = dict(bundle or {})
    bundle["text/plain"] = "\n".join(lines)
    bundle["text/html"] = "<br>".join(html.escape(line) for line in lines)
    return bundle


def close_tree(widget) -> None:
    """Close `widget` and every widget inside it: ipywidgets keeps each open widget in a registry, so a panel
    dropped without closing stays alive, with whatever it holds (a model)."""
    for child in getattr(widget, "children", ()):
        close_tree(child)
    widget.close()
