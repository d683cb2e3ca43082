"""fedseg: federated brain-tumour segmentation with signed, file-based rounds.

The package is a library with a thin CLI over it (``fedseg.cli``). Importing it is cheap: torch,
SimpleITK, h5py and scipy are imported only by the functions that need them.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
