"""The pages and a digest email rendered by a real browser (headless Chromium), when it is installed."""

from __future__ import annotations

import importlib.util
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


@pytest.mark.slow
def test_pages_render_in_headless_chromium(tmp_path):
    shots = _script()
    chromium = shots.find_chromium()
    if chromium is None:
        pytest.skip(
            "chromium is not installed (Debian: apt-get install chromium); scripts/screenshots.py needs it"
        )
    wanted = {"confirm", "unsubscribe", "preferences", "invalid-token", "digest-email"}
    pngs = shots.run(tmp_path, chromium, only=wanted)
    assert {p.stem for p in pngs} == wanted
    for png in pngs:
        data = png.read_bytes()
        assert data.startswith(b"\x89PNG")
        # A blank or error page compresses to a few kB; these pages carry text and colour.
        assert len(data) > 8000, f"{png.name} looks empty ({len(data)} bytes)"
