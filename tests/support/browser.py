"""Playwright driving Debian's chromium (/usr/bin/chromium), for page tests (a pytest plugin)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = os.environ.get("CHOT_CHROMIUM", "/usr/bin/chromium")

# Flags that keep chromium quiet on a machine with no network but loopback, running as root.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A Playwright Browser on Debian's chromium, shared by the session."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run ./scripts/setup.sh (it installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context and page per test (no cookies shared between tests)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="vi-VN")
    p = context.new_page()
    p.set_default_timeout(10_000)
    try:
        yield p
    finally:
        context.close()
