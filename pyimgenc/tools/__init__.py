"""Developer tools that ship with the package (``python -m pyimgenc.tools.layers``)."""
