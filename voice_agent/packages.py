"""Model files shipped inside PyPI packages: found on disk without importing the package
(some, like silero-vad, import torch on import)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {package.replace('_', '-')} package is not installed: run `make setup`")
    return Path(next(iter(spec.submodule_search_locations)))
