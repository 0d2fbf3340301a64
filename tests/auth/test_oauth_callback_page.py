"""The callback page shows hostile text as text and posts only inert JSON to its own origin."""

from __future__ import annotations

import json
import re

from palyra.auth.oauth_callback_page import render_callback_page, script_safe_json

HOSTILE = "</script><script>alert(1)</script><!-- & \"' \u2028\u2029 <img src=x onerror=y>"


def _script(page: str) -> str:
    scripts = re.findall(r"<script>(.*?)</script>", page, flags=re.S)
    assert len(scripts) == 1
    return scripts[0]


def test_title_and_body_are_html_escaped() -> None:
    page = render_callback_page(title=HOSTILE, body=HOSTILE, payload={})
    assert "<img" not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in page
    assert "&quot;" in page


def test_payload_json_cannot_close_the_script_or_break_lines() -> None:
    page = render_callback_page(title="t", body="b", payload={"message": HOSTILE})
    script = _script(page)
    for forbidden in ("</", "<!--", "<", ">", "\u2028", "\u2029"):
        assert forbidden not in script
    data = script.split("var payload = ", 1)[1].split(";if (window.opener)", 1)[0]
    assert json.loads(data)["message"] == HOSTILE


def test_script_posts_only_to_its_own_origin() -> None:
    script = _script(render_callback_page(title="t", body="b", payload={"attempt_id": "a"}))
    assert "postMessage(payload, window.location.origin)" in script
    assert '"*"' not in script


def test_escaped_json_round_trips() -> None:
    payload = {"a": "x & y < z > w \u2028", "n": 1}
    assert json.loads(script_safe_json(payload)) == payload
