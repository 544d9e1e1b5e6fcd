"""ml_service must not import Django (or the web apps): it runs in workers and CLIs alike."""

import pkgutil
import subprocess
import sys

import ml_service


def test_ml_service_imports_no_django():
    modules = [m.name for m in pkgutil.walk_packages(ml_service.__path__, "ml_service.")]
    code = (
        "import importlib, sys\n"
        f"for name in ['ml_service', *{modules!r}]: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'django', 'rest_framework', 'resight', 'catalog', 'identification'})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"ml_service pulled in: {result.stdout.strip()}"
