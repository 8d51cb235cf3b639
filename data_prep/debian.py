"""Debian packages of real audio: which are missing, and installing them when allowed.

The demo corpus is made from packages a Debian or Ubuntu machine can install (real voices,
game music, desktop sounds). A fresh machine has none of them; without them the corpus is
synthetic. This module installs the missing ones with apt-get when this process may
(root, or sudo without a password), and otherwise says what to run.

    python -m data_prep.debian PACKAGE... [--what "the Opus baseline"]

installs those missing from the shell (the recipes' Opus tools) and exits 0 either way.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from typing import Optional, Sequence


def missing_packages(names: Sequence[str]) -> list[str]:
    """The packages of ``names`` that dpkg does not list as installed (all of them where
    there is no dpkg)."""
    if not shutil.which("dpkg-query"):
        return list(names)
    missing = []
    for name in names:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name],
                                capture_output=True, text=True)
        if result.returncode != 0 or not result.stdout.endswith("installed"):
            missing.append(name)
    return missing


def install_command() -> list[str] | None:
    """The apt-get prefix this process may run (None when it may not)."""
    if not shutil.which("apt-get"):
        return None
    if os.geteuid() == 0:
        return ["apt-get"]
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"],
                                               capture_output=True).returncode == 0:
        return ["sudo", "-n", "apt-get"]
    return None


def install(names: Sequence[str]) -> str | None:
    """Install ``names`` with apt-get; None when done, else why it was not."""
    command = install_command()
    if command is None:
        return "apt-get needs root here (or sudo without a password)"
    environment = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    steps = [[*command, "update", "-q"],
             [*command, "install", "-y", "-q", "--no-install-recommends", *names]]
    for step in steps:
        result = subprocess.run(step, env=environment, capture_output=True, text=True)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no message"])[-1]
            return f"{' '.join(step[:3])} failed: {last}"
    return None


def install_missing(names: Sequence[str], what: str) -> None:
    """Install those of ``names`` that are missing, saying so (``what`` they hold) and
    warning, without stopping, when they cannot be installed."""
    missing = missing_packages(names)
    if not missing:
        return
    print(f"installing Debian packages of {what}: {' '.join(missing)}", flush=True)
    problem = install(missing)
    if problem is None:
        print("installed", flush=True)
    else:
        print(f"warning: could not install them ({problem})", file=sys.stderr, flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_prep.debian",
                                     description="Install missing Debian packages when allowed.")
    parser.add_argument("packages", nargs="+", metavar="PACKAGE")
    parser.add_argument("--what", default="audio tools", help="what they are, for the message")
    args = parser.parse_args(argv)
    install_missing(args.packages, args.what)
    return 0


if __name__ == "__main__":
    sys.exit(main())
