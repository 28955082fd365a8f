"""`hardprompt ui`: the web app (Gradio), a front end over `hardprompt.apps`; the optional extra `hardprompt[ui]`.

Importing this package does not import gradio; `require_gradio` says how to install it.
"""

from __future__ import annotations

from ..errors import HardpromptError

INSTALL_HINT = "the web app needs gradio: pip install 'hardprompt[ui]'"


def require_gradio() -> None:
    """Raise a one-line HardpromptError when gradio is not installed."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise HardpromptError(INSTALL_HINT) from None
