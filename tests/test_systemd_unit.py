"""deploy/systemd/dlp-gateway.service: hardened, and accepted by systemd-analyze verify.

``verify`` checks that ExecStart's binary exists, so the test verifies a copy whose
ExecStart points at this checkout's ``dlp-gateway`` (every other line as shipped).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "deploy" / "systemd" / "dlp-gateway.service"
SHIPPED_EXEC = "/opt/dlp-gateway/venv/bin/dlp-gateway"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def _service_settings() -> dict[str, str]:
    settings: dict[str, str] = {}
    section = ""
    for line in UNIT.read_text("utf-8").splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key] = value
    return settings


def _local_copy(tmp_path: Path) -> Path:
    exe = Path(sys.executable).with_name("dlp-gateway")
    if not exe.exists():
        pytest.skip(f"{exe} not installed in this environment")
    text = UNIT.read_text("utf-8")
    assert f"ExecStart={SHIPPED_EXEC} " in text
    copy = tmp_path / "dlp-gateway.service"
    copy.write_text(text.replace(f"ExecStart={SHIPPED_EXEC}", f"ExecStart={exe}"), "utf-8")
    return copy


def test_unit_is_hardened() -> None:
    s = _service_settings()
    assert s["User"] == "dlp-gateway" and s["Group"] == "dlp-gateway"
    assert s["NoNewPrivileges"] == "yes"
    assert s["ProtectSystem"] == "strict"
    assert s["PrivateTmp"] == "yes"
    assert s["CapabilityBoundingSet"] == ""
    assert s["ReadWritePaths"] == "/var/lib/dlp-gateway"
    assert s["StateDirectory"] == "dlp-gateway"
    assert s["StateDirectoryMode"] == "2770" and s["UMask"] == "0007"
    assert s["ExecStart"].startswith(SHIPPED_EXEC + " serve --config /etc/dlp-gateway/")


def test_old_unit_path_is_gone_and_readme_points_at_the_new_one() -> None:
    assert not (REPO / "deploy" / "dlp-gateway.service").exists()
    readme = (REPO / "README.md").read_text("utf-8")
    assert "deploy/systemd/dlp-gateway.service" in readme
    assert not re.search(r"deploy/dlp-gateway\.service", readme)


@needs_analyze
def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    copy = _local_copy(tmp_path)
    done = subprocess.run([ANALYZE or "", "verify", str(copy)], capture_output=True,
                          text=True, timeout=60)
    # libseccomp may not know every syscall of systemd's @system-service list: harmless
    problems = [line for line in done.stderr.splitlines()
                if line.strip() and "Failed to parse system call" not in line]
    assert done.returncode == 0, done.stderr
    assert problems == [], problems


@needs_analyze
def test_systemd_analyze_security_exposure_is_low(tmp_path: Path) -> None:
    copy = _local_copy(tmp_path)
    done = subprocess.run([ANALYZE or "", "security", "--offline=yes", str(copy)],
                          capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    if done.returncode != 0 and match is None:
        pytest.skip(f"systemd-analyze security --offline unsupported: {done.stderr[:200]}")
    assert match, done.stdout[-500:]
    assert float(match.group(1)) <= 2.5, done.stdout
