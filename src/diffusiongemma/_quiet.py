"""Third-party warnings that would break the command line's error contract (one sentence on stderr), filtered
narrowly before anything imports torch.

torch imports ``pynvml`` when it is installed (common on GPU machines), and the deprecated ``pynvml`` package (12.x,
superseded by ``nvidia-ml-py``) warns at import: one more stderr line on every command. Only that warning.
"""

from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message="The pynvml package is deprecated", category=FutureWarning)
