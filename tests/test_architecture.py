"""The architecture's import contracts (pyproject.toml, [tool.importlinter]; docs/architecture.md) hold:
ml_service imports no Django and no app, the apps depend one way, identification's rooms build on matching
only, the domain never imports the project's configuration, and no sibling modules import each other in a
cycle. Checked by import-linter on the source, so an import inside a function counts too."""

from __future__ import annotations

import os
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contracts_hold(capsys) -> None:
    cwd = Path.cwd()
    os.chdir(ROOT)  # import-linter reads pyproject.toml and finds the packages from here
    try:
        exit_code = lint_imports(config_filename="pyproject.toml", no_cache=True, no_logo=True)
    finally:
        os.chdir(cwd)
    report = capsys.readouterr().out
    assert exit_code == 0, report
    assert "0 broken" in report and "5 kept" in report
