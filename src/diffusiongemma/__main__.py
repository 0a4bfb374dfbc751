"""``python -m diffusiongemma``: the same command line as ``diffusiongemma``."""

from .cli import main

if __name__ == "__main__":
    main()
