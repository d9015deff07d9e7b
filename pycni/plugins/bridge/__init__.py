"""The bridge plugin (``type: bridge``); see ``plugin`` for the recipe and ``conf`` for the options."""

from pycni.plugins.bridge.plugin import PLUGIN

__all__ = ["PLUGIN"]
