from codec import install_check


def test_this_install_loads_the_compiled_ops_and_names_the_versions():
    report = install_check.check()
    assert report.problem is None
    assert set(report.versions) == {"torch", "torchaudio", "python"}


def test_a_library_that_does_not_load_is_one_message_with_the_fix(monkeypatch, capsys):
    def broken() -> None:
        raise OSError("libtorchaudio.so: undefined symbol: torch_exception_get_what")

    monkeypatch.setattr(install_check, "_exercise_compiled_ops", broken)
    assert install_check.main() == 1
    err = capsys.readouterr().err
    assert "does not load beside torch" in err
    assert "undefined symbol" in err
    assert "pip install -c constraints.txt" in err


def test_a_version_other_than_the_pin_is_reported(monkeypatch):
    monkeypatch.setattr(install_check, "_pinned", lambda: {"torch": "0.0.1"})
    report = install_check.check()
    assert report.problem is not None and "torch" in report.problem and "0.0.1" in report.problem
