"""Attribution: JSON round trip and escaping of untrusted text in the HTML page."""

import numpy as np

from diffusiongemma import Attribution, Unit


def make(text="Say <script>alert(1)</script> & go", target="</title><img src=x onerror=alert(2)>"):
    units = [Unit("Say", 0, 3, (1,), "prompt"), Unit("<script>alert(1)</script>", 4, 29, (2, 3, 4), "prompt"),
             Unit("go", 32, 34, (6,), "prompt")]
    return Attribution(units=units, scores=np.array([0.5, -1.25, 0.125]), stderr=np.array([0.1, 0.2, np.inf]),
                       text=text, target={"kind": "continuation", "text": target, "tokens": [5, 6]},
                       v_full=-1.0, v_empty=-1.5, evaluations=64, wall_time=1.5,
                       settings={"seed": 3, "units": "words"}, provenance={"weights_sha256": "ab" * 32})


def test_json_round_trip(tmp_path):
    a = make()
    b = Attribution.from_json(a.to_json(tmp_path / "a.json"))
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.stderr, b.stderr)
    assert b.units == a.units and b.text == a.text and b.target == a.target
    assert b.settings == a.settings and b.provenance == a.provenance
    assert b.efficiency_gap == a.efficiency_gap == -0.625 - 0.5


def test_html_escapes_prompt_and_target(tmp_path):
    html = make().to_html(tmp_path / "a.html").read_text()
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "http://" not in html and "https://" not in html  # self-contained: nothing external
    assert "ab" * 32 in html


def test_top_orders_by_magnitude():
    assert [u.text for u, _, _ in make().top(2)] == ["<script>alert(1)</script>", "Say"]
