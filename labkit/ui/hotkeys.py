"""Hotkeys: keyboard shortcuts for a panel (Ctrl+Enter generates), a tiny anywidget with no picture of its own.

ipywidgets' text boxes send no key events to Python; this widget's browser side listens on the enclosing panel
(the element matching `scope`) and sends {"event": "generate"}, which calls `on_generate` here."""

import anywidget
import traitlets as t

from .mask import widget_file

SETTLE = 0.3  # seconds between Ctrl+Enter and the run, for the text boxes' last updates to arrive


class Hotkeys(anywidget.AnyWidget):
    _esm = widget_file("hotkeys.js")
    scope = t.Unicode(".labkit-studio").tag(sync=True)  # the CSS selector of the panel it listens on

    def __init__(self, on_generate, scope: str = ".labkit-studio"):
        super().__init__(scope=scope)
        self.on_generate = on_generate
        self.on_msg(self._message)

    def _message(self, widget, content, buffers) -> None:
        """After a short wait: the front end holds back a text box's last keystrokes while the kernel is busy and
        sends them once it is idle, so the key's message may arrive first (seen: a prompt missing its last
        letters)."""
        import threading

        if isinstance(content, dict) and content.get("event") == "generate":
            timer = threading.Timer(SETTLE, self.on_generate)
            timer.daemon = True
            timer.start()
