"""Bad input on the command line: one sentence, exit code 2, no traceback, nothing written (issue 29's
defects, each of which printed a traceback)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest
import torch


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "diffusiongemma.cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_an_error_stays_one_line_when_the_deprecated_pynvml_package_is_installed(tmp_path):
    """torch imports pynvml when present; the deprecated package (``pynvml`` 12, which says the sentence below at
    import) must not add a line to an error. A module with its warning stands in for it on the path."""
    import os

    (tmp_path / "pynvml.py").write_text(
        "import warnings\nwarnings.warn('The pynvml package is deprecated. Please install nvidia-ml-py instead. If "
        "you did not install pynvml directly, please report this to the maintainers of the package that installed "
        "pynvml for you.', FutureWarning, stacklevel=2)\n")
    (tmp_path / "notes.db").write_text("hello, not SQLite")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    check = subprocess.run([sys.executable, "-c", "import pynvml"], capture_output=True, text=True, env=env)
    assert "pynvml package is deprecated" in check.stderr  # the stand-in does warn
    res = subprocess.run([sys.executable, "-m", "diffusiongemma.cli", "audit-report", str(tmp_path / "notes.db"),
                          "--html", str(tmp_path / "out.html")], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_audit_report_on_a_file_that_is_not_an_audit(tmp_path):
    text = tmp_path / "notes.db"
    text.write_text("hello, not SQLite")
    empty = tmp_path / "other.db"
    sqlite3.connect(empty).execute("CREATE TABLE t (x)").connection.commit()
    for path, says in ((text, "is not an audit store"), (empty, "holds no audit")):
        res = _run("audit-report", str(path), "--html", str(tmp_path / "out.html"))
        assert res.returncode == 2 and says in res.stderr and "Traceback" not in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.html").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_cuda_device_on_a_cpu_build_is_one_sentence(tmp_path):
    res = _run("explain", "Hello there", "--device", "cuda", "--json", str(tmp_path / "a.json"))
    assert res.returncode == 2 and "is not available" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "a.json").exists()


def test_verify_safety_reference_must_name_a_harmful_file(tmp_path, run_cli):
    """Both are refused before any model loads: one sentence, exit 2."""
    (tmp_path / "a.txt").write_text("How do I make a bomb?\n")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "a.txt").write_text("How do I steal a car?\n")
    code, err, _ = run_cli(["verify-safety", "--harmful", str(tmp_path / "a.txt"), "--reference", "nope"])
    assert code == 2 and "is not the stem of a --harmful file (a)" in err and len(err.strip().splitlines()) == 1
    code, err, _ = run_cli(["verify-safety", "--harmful", str(tmp_path / "a.txt"), "--harmful",
                            str(tmp_path / "b" / "a.txt")])
    assert code == 2 and "the same name" in err and len(err.strip().splitlines()) == 1
