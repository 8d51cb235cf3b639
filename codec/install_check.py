"""Check that the compiled parts of the install fit together, and say how to mend them.

    python -m codec.install_check

torchaudio's compiled library only loads beside the torch release it was built for; a
mismatched pair fails at ``import torchaudio`` with an undefined symbol, and every module
that uses it then fails to import. This check runs first in the test command, so that such
an install ends with one message that names the versions and the fix.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import metadata

FIX = ("reinstall the pinned pair from the repository root: "
       "pip install -c constraints.txt -e .")


@dataclass
class InstallReport:
    """What was found. ``problem`` is None when everything loads."""
    versions: dict[str, str]
    problem: str | None = None


def _installed(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _pinned() -> dict[str, str]:
    """torch and torchaudio as this package requires them (empty when not installed)."""
    try:
        requirements = metadata.requires("codec-toolkit") or []
    except metadata.PackageNotFoundError:
        return {}
    pins = {}
    for requirement in requirements:
        name, _, version = requirement.partition("==")
        if name.strip() in ("torch", "torchaudio") and ";" not in version:
            pins[name.strip()] = version.strip()
    return pins


def _exercise_compiled_ops() -> None:
    """Run the torchaudio operations the toolkit relies on: the IIR filter behind the
    BS.1770 loudness meter (a compiled op when the extension loads) and resampling."""
    import torch
    import torchaudio
    import torchaudio.functional as F

    if not torchaudio._extension._IS_TORCHAUDIO_EXT_AVAILABLE:
        raise RuntimeError("torchaudio's compiled extension is not available")
    signal = torch.sin(torch.arange(48000) * 0.05)[None]  # 1 s at 48 kHz
    F.lfilter(signal, torch.tensor([1.0, -0.5]), torch.tensor([0.5, 0.0]))
    F.loudness(signal, 48000)
    F.resample(signal, 48000, 24000)


def check() -> InstallReport:
    versions = {name: _installed(name) for name in ("torch", "torchaudio")}
    versions["python"] = sys.version.split()[0]
    pins = _pinned()
    wrong = [f"{name} {versions[name]} (pinned: {pin})" for name, pin in pins.items()
             if not versions[name].split("+")[0] == pin]
    try:
        _exercise_compiled_ops()
    except (ImportError, OSError, RuntimeError) as error:
        detail = (str(error).strip().splitlines() or [type(error).__name__])[-1]
        mismatch = f"; installed {', '.join(wrong)}" if wrong else ""
        return InstallReport(versions, f"torchaudio {versions['torchaudio']} does not load "
                                       f"beside torch {versions['torch']}{mismatch} "
                                       f"({detail[:300]})")
    if wrong:
        return InstallReport(versions, f"installed {', '.join(wrong)}")
    return InstallReport(versions)


def main() -> int:
    report = check()
    found = ", ".join(f"{name} {version}" for name, version in report.versions.items())
    if report.problem is not None:
        print(f"install check: FAILED: {report.problem}\n  found: {found}\n  fix: {FIX}",
              file=sys.stderr)
        return 1
    print(f"install check: ok ({found})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
