import subprocess

from data_prep import debian


def fake_run(outputs):
    calls = []

    def run(command, **kwargs):
        calls.append(command)
        code, out = outputs(command)
        return subprocess.CompletedProcess(command, code, out, "E: no such package")

    return run, calls


def test_missing_packages_are_those_dpkg_does_not_list_as_installed(monkeypatch):
    installed = {"a": "install ok installed", "b": "deinstall ok config-files"}
    run, _ = fake_run(lambda c: (0, installed[c[-1]]) if c[-1] in installed else (1, ""))
    monkeypatch.setattr(debian.subprocess, "run", run)
    monkeypatch.setattr(debian.shutil, "which", lambda name: "/usr/bin/" + name)
    assert debian.missing_packages(["a", "b", "c"]) == ["b", "c"]


def test_without_dpkg_every_package_is_missing(monkeypatch):
    monkeypatch.setattr(debian.shutil, "which", lambda name: None)
    assert debian.missing_packages(["a"]) == ["a"]
    assert debian.install(["a"]) is not None  # and nothing can install them


def test_install_updates_then_installs_and_reports_a_failure(monkeypatch):
    monkeypatch.setattr(debian, "install_command", lambda: ["apt-get"])
    run, calls = fake_run(lambda c: (0, ""))
    monkeypatch.setattr(debian.subprocess, "run", run)
    assert debian.install(["klettres-data"]) is None
    assert calls[0][:2] == ["apt-get", "update"] and calls[1][-1] == "klettres-data"
    run, _ = fake_run(lambda c: (100, "") if "install" in c else (0, ""))
    monkeypatch.setattr(debian.subprocess, "run", run)
    assert "failed: E: no such package" in debian.install(["nothing"])
