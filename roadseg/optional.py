"""Optional packages: importing them, or saying in one line how to install them.

roadseg's core needs none of onnx, onnxruntime and OpenVINO; ``roadseg export``
and the ``onnxruntime`` / ``openvino`` engines do. Each is imported here, when it
is needed, so a missing one fails with the pip command that installs it.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from roadseg.errors import MissingDependencyError

#: The pip extra that installs each optional module.
EXTRAS = {
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "openvino": "openvino",
}


def install_hint(module: str, extra: str | None = None) -> str:
    """The pip command that installs ``module`` with roadseg (through ``extra``,
    default: the module's own extra)."""
    return f'pip install "roadseg[{extra or EXTRAS.get(module, module)}]"'


def is_installed(module: str) -> bool:
    """True if ``module`` can be imported (it is not imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, purpose: str, extra: str | None = None) -> ModuleType:
    """Import ``module`` for ``purpose`` (e.g. ``"roadseg export"``).

    ``extra`` names the pip extra to suggest when the purpose has its own
    (onnx for ``--format openvino`` comes with ``roadseg[openvino]``).

    Raises:
        MissingDependencyError: the package is not installed, with the pip
            command that installs it.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"{purpose} needs the {module} package: {install_hint(module, extra)}"
        ) from None
