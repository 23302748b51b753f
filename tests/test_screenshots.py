"""The pages and emails rendered by a real browser (headless Chromium), when it is installed
(`.ci/run` installs it): screenshots, and a layout check for sideways overflow and clipped text."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "screenshots.py"


def _script():
    spec = importlib.util.spec_from_file_location("clapper_screenshots", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def shots():
    module = _script()
    if module.find_chromium() is None:
        pytest.skip(
            "chromium is not installed (Debian: apt-get install chromium); scripts/screenshots.py needs it"
        )
    return module


@pytest.mark.slow
def test_pages_render_in_headless_chromium(shots, tmp_path):
    wanted = {"confirm", "unsubscribe", "preferences", "invalid-token", "digest-email", "digest-email-dark"}
    pngs = shots.run(tmp_path, shots.find_chromium(), only=wanted)
    assert {p.stem for p in pngs} == wanted
    for png in pngs:
        data = png.read_bytes()
        assert data.startswith(b"\x89PNG")
        # A blank or error page compresses to a few kB; these pages carry text and colour.
        assert len(data) > 8000, f"{png.name} looks empty ({len(data)} bytes)"


@pytest.mark.slow
def test_no_email_or_page_overflows_or_clips_at_phone_and_tablet_width(shots):
    found = shots.check_layout(shots.find_chromium())
    for mail in ("digest-email", "confirm-email", "announcement-email"):
        for label in ("375px light", "375px dark", "800px light", "800px dark"):
            assert f"{mail} {label}" in found
    for page in (
        "confirm",
        "unsubscribe",
        "unsubscribed",
        "preferences",
        "preferences-saved",
        "invalid-token",
    ):
        assert f"{page} 375px light" in found and f"{page} 800px dark" in found
    assert {label: problems for label, problems in found.items() if problems} == {}


@pytest.mark.slow
def test_the_layout_check_sees_overflow_and_clipped_text(shots, tmp_path):
    wide = tmp_path / "wide.html"
    wide.write_text('<body style="margin:0"><table width="600"><tr><td>x</td></tr></table></body>')
    clipped = tmp_path / "clipped.html"
    clipped.write_text(
        '<body style="margin:0"><p style="width:100px;overflow:hidden;white-space:nowrap">'
        "A title far too long for a hundred pixels</p></body>"
    )
    fine = tmp_path / "fine.html"
    fine.write_text("<body><p>Short and sweet.</p></body>")
    results = shots.measure(
        shots.find_chromium(), [(wide, 375), (clipped, 375), (fine, 375)], False, tmp_path / "p"
    )
    assert [r["width"] for r in results] == [375, 375, 375]
    assert any("wider than the screen: 600" in p for p in results[0]["problems"]), results[0]
    assert any("clips text sideways: p" in p for p in results[1]["problems"]), results[1]
    assert results[2]["problems"] == []


def _chromium_block() -> str:
    text = (SCRIPT.parent.parent / ".ci" / "run").read_text()
    start = text.index("if [ ! -x /usr/bin/chromium ]")
    return text[start : text.index("fi\n", start) + 3]


@pytest.mark.parametrize("present", [True, False])
def test_ci_installs_chromium_only_when_it_is_missing(tmp_path, present):
    fake = tmp_path / "bin"
    fake.mkdir()
    calls = tmp_path / "calls"
    (fake / "apt-get").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (fake / "apt-get").chmod(0o755)
    browser = tmp_path / "chromium"
    if present:
        browser.write_text("#!/bin/sh\n")
        browser.chmod(0o755)
    block = _chromium_block().replace("/usr/bin/chromium", str(browser))
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block], check=True, env={"PATH": f"{fake}:/usr/bin:/bin"}
    )
    done = calls.read_text().splitlines() if calls.exists() else []
    assert done == ([] if present else ["update", "install -y chromium"])
