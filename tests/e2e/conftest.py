"""End-to-end tests: the real Prometheus and Alertmanager, from Debian's packages."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="session")
def peers_installed() -> None:
    """Prometheus, promtool, Alertmanager and amtool on PATH (installed from Debian if missing)."""
    subprocess.run([str(ROOT / "deploy/local/peers.sh"), "install"], check=True, timeout=600)
