"""Is the model hub reachable? Asked once, in a few seconds, before a hub id is loaded.

Without network, ``from_pretrained("org/name")`` retries for 30-50 s before its error. One
short probe (name lookup + TCP connect to the endpoint, at most ``timeout`` seconds) tells
the loader to use the local cache only (``local_files_only=True``), so a cached model still
loads and a missing one fails at once. ``HF_HUB_OFFLINE=1`` skips the probe: the hub
libraries then never touch the network themselves.
"""

from __future__ import annotations

import os
import socket
import threading
from urllib.parse import urlparse

_TRUE = ("1", "on", "yes", "true")


def hub_offline_by_env() -> bool:
    """True when the user said so: ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub endpoint (``HF_ENDPOINT``) opens within ``timeout`` s.

    The name lookup runs in a daemon thread because ``getaddrinfo`` has no timeout of its own."""
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = url.hostname or "huggingface.co"
    port = url.port or (80 if url.scheme == "http" else 443)
    result: dict[str, bool] = {}

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result["ok"] = True
        except OSError:
            result["ok"] = False

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout)
    return result.get("ok", False)


def use_local_files_only(source: str) -> bool:
    """For a hub id (not a local folder): True when the hub cannot be used, so only the cache is."""
    if os.path.exists(source):
        return False
    return hub_offline_by_env() or not hub_reachable()
