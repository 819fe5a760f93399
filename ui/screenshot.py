"""Take the README screenshot with the same headless Chromium set-up as the tests.

    qa serve --port 7860 &            # then:
    python -m ui.screenshot http://127.0.0.1:7860/ docs/screenshot.png

Debian's chromium, driven by playwright (never `playwright install`), with
every host but 127.0.0.1 unresolvable, so the page must work offline.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
VIEWPORT = {"width": 1280, "height": 800}
QUESTION = "Where were the North Korean soldiers captured?"


def take(url: str, out: Path, question: str = QUESTION) -> Path:
    from PIL import Image
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                    args=CHROMIUM_FLAGS, viewport=VIEWPORT)
        page = ctx.new_page()
        page.goto(url)
        page.wait_for_selector("#qa-question textarea", timeout=60_000)
        page.fill("#qa-question textarea", question)
        page.click("#qa-ask")
        page.wait_for_selector("#qa-chat blockquote.qa-best", timeout=60_000)
        page.wait_for_selector("#qa-source mark.active", timeout=60_000)
        page.evaluate("document.querySelector('#qa-source mark.active').scrollIntoView({block: 'center'})")
        page.evaluate("""() => { for (const e of document.querySelectorAll('#qa-chat *'))
                                    if (e.scrollHeight > e.clientHeight) e.scrollTop = 0; }""")
        page.mouse.move(0, 0)
        page.wait_for_timeout(500)  # let the chat's scroll settle before the picture
        out.parent.mkdir(parents=True, exist_ok=True)
        raw = out.with_suffix(".raw.png")
        page.screenshot(path=str(raw))
        ctx.close()
    image = Image.open(raw).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    image.save(out, optimize=True)
    raw.unlink()
    return out


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:7860/"
    path = take(url, Path(sys.argv[2] if len(sys.argv) > 2 else "docs/screenshot.png"))
    print(f"{path}: {path.stat().st_size // 1024} KB")
