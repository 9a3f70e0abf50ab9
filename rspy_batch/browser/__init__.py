"""Publishing side of the catalog for people: STAC Browser built once from npm
(:mod:`.build`) and a small CORS-enabled static server (:mod:`.serve`)."""

from rspy_batch.browser.build import (
    BrowserError,
    browser_url,
    build_browser,
    config_js,
    install_browser,
)
from rspy_batch.browser.serve import content_type, make_server, running, serve

__all__ = ["BrowserError", "browser_url", "build_browser", "config_js", "content_type",
           "install_browser", "make_server", "running", "serve"]
