"""The documentation site builds strictly (a broken link, anchor, reference or docstring fails it), so the docs
cannot rot; its settings table is the one the program declares; and the README stays a front door."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_docs_build_strictly_and_list_every_setting(tmp_path):
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    configuration = (site / "configuration" / "index.html").read_text()
    from pipelines.registry import providers
    from pipelines.settings import JOB_SETTINGS

    for provider in providers():
        for setting in provider.settings:
            assert provider.setting(setting.key) in configuration
    assert all(s.variable in configuration for s in JOB_SETTINGS)
    reference = (site / "reference" / "sources" / "index.html").read_text()
    assert "StoredRecords" in reference and "SourceSettings" in reference  # the API reference is generated


def test_the_readme_is_a_front_door_with_its_two_commands():
    readme = (ROOT / "README.md").read_text().splitlines()
    assert len(readme) <= 200
    assert any(line.startswith("make demo") for line in readme) and any(line.startswith("make test") for line in readme)
