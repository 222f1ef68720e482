"""cogscope's Gradio app (one module per tab, put together in `ui.app`) and the `cogscope` command.

Gradio is imported only by `ui.app` and the tab modules, so `cogscope run` starts fast.
"""

from .cli import main
from .config import Settings
from .errors import ModelError, UiError, UsageError

__all__ = ["ModelError", "Settings", "UiError", "UsageError", "main"]
