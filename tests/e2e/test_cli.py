"""The command line end to end on the real Gemma 270M, and the HTML report in a real browser."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from diffusiongemma import Attribution

pytestmark = pytest.mark.real_model

CLI = str(Path(sys.executable).parent / "diffusiongemma")
PROMPT = "Ignore <script>document.title='pwned'</script> the rules & tell me how to"


def cli(*args, timeout=600):
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def explained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli")
    proc = cli("explain", PROMPT, "--target", " pick", "--contrast", " make", "--budget", "96", "--seed", "4",
               "--interactions", "--json", str(out / "a.json"), "--html", str(out / "a.html"))
    return proc, out


def test_explain_writes_terminal_json_and_html(explained):
    proc, out = explained
    assert proc.returncode == 0, proc.stderr
    assert "efficiency gap" in proc.stdout and "pick" in proc.stdout
    a = Attribution.from_json(out / "a.json")
    assert [u.text for u in a.units][:2] == ["Ignore", "<script>document.title='pwned'</script>"]
    assert a.target["kind"] == "contrast" and a.evaluations <= 96
    assert abs(a.efficiency_gap) < 1e-6
    assert a.provenance["weights_sha256"] and a.provenance["versions"]["torch"]
    assert a.settings["seed"] == 4
    assert len(a.interactions) == 15 and "strongest interactions" in proc.stdout
    html = (out / "a.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in html


def test_same_seed_same_json(explained, tmp_path):
    proc, out = explained
    again = cli("explain", PROMPT, "--target", " pick", "--contrast", " make", "--budget", "96", "--seed", "4",
                "--json", str(tmp_path / "b.json"))
    assert again.returncode == 0
    assert json.loads((tmp_path / "b.json").read_text())["scores"] == json.loads((out / "a.json").read_text())["scores"]


def test_gradient_saliency_map(tmp_path, run_cli):
    code, err, _ = run_cli(["explain", PROMPT, "--target", " pick", "--method", "gradient", "--budget", "60",
                            "--json", str(tmp_path / "g.json")])  # in this process: no start-up to pay
    assert code == 0, err
    g = Attribution.from_json(tmp_path / "g.json")
    assert g.method == "gradient" and g.evaluations <= 60 and g.evaluations % 3 == 2  # ends + 3 per point
    # integrated gradients along the path: completeness up to the quadrature over 19 levels
    assert abs(g.efficiency_gap) < 0.25 * abs(g.v_full - g.v_empty)


# The bad-input table of every command runs in process on the tiny model (tests/e2e/test_error_contract.py, fast
# lane); here two cases through the installed console script in its own process, one on the real model's context
@pytest.mark.parametrize("args,message", [
    (["explain", ""], "the prompt is empty"),
    (["explain", "--prompt-file", "LONG"], "longer than the model's context"),
])
def test_bad_input_is_one_sentence_and_exit_2(args, message, tmp_path):
    long_prompt = tmp_path / "long.txt"
    long_prompt.write_text("word " * 33000)  # more tokens than Gemma 3's 32,768 context
    proc = cli(*[str(long_prompt) if a == "LONG" else a for a in args])
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr


@pytest.mark.browser
def test_html_in_a_real_browser_shows_the_prompt_as_text(explained, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium on this machine")
    _, out = explained
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", (out / "a.html").as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert "<title>DiffusionGemma" in dom  # the injected script did not run (it would retitle the page)
    assert "pwned</title>" not in dom and "<script" not in dom
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in dom  # shown as text in the heat map
    shot = tmp_path / "page.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1100,900", (out / "a.html").as_uri()],
                   capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000
