"""Debian's Chromium (and Khmer fonts) for the browser tests; Playwright drives it.

Playwright's own browser download cannot work on the machines this project runs on, so the
tests launch ``/usr/bin/chromium`` through ``executable_path``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
PACKAGES = ("chromium", "fonts-khmeros")
LAUNCH_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def khmer_fonts_installed() -> bool:
    return Path("/usr/share/fonts/truetype/khmeros").is_dir()


def ensure_browser_installed() -> Path:
    """The Chromium binary, installed with apt (and the Khmer fonts) when missing."""
    if CHROMIUM.exists() and khmer_fonts_installed():
        return CHROMIUM
    if os.geteuid() != 0:
        raise RuntimeError("Chromium is missing: run `sudo apt-get install chromium fonts-khmeros`")
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
        check=True,
        env=env,
    )
    if not CHROMIUM.exists():
        raise RuntimeError("apt installed chromium but /usr/bin/chromium is missing")
    return CHROMIUM


def main(argv: list[str]) -> int:
    if argv[:1] != ["install"]:
        print("usage: python -m cpu_platform.devstack.browser install", file=sys.stderr)
        return 2
    print(ensure_browser_installed(), shutil.which("chromium"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
