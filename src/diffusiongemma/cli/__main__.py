"""``python -m diffusiongemma.cli``: the command line."""

from . import main

main()
