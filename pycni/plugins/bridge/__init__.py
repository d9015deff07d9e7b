"""The bridge plugin (``type: bridge``); see ``plugin`` for the recipe and ``conf`` for the options."""
