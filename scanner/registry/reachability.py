"""Does an MLflow tracking server answer? One request with a short timeout, no retries.

MLflow's own client retries a refused connection for minutes (urllib3 backoff) and says only at the end what was
wrong; `serve` asks this first, so a wrong `--tracking-uri` or a server that is down is named within seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from scanner.errors import shortened


def unreachable_reason(tracking_uri: str, *, timeout_s: float = 3.0) -> str | None:
    """None when the server answers HTTP at all (any status: auth and routing are MLflow's business); else why not.

    URIs that are not http(s) (a local sqlite or file store, databricks) are not probed: None.
    """
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    import requests

    try:
        requests.get(tracking_uri.rstrip("/") + "/health", timeout=timeout_s, allow_redirects=False)
    except requests.exceptions.ConnectTimeout:
        return f"no connection within {timeout_s:g} s"
    except requests.exceptions.ReadTimeout:
        return f"connected, but no answer within {timeout_s:g} s"
    except requests.exceptions.ConnectionError as error:
        text = str(error)
        for known in ("Connection refused", "Name or service not known", "No route to host", "Network is unreachable"):
            if known in text:
                return known.lower()
        return shortened(text, 200)
    except requests.exceptions.RequestException as error:
        return shortened(f"{type(error).__name__}: {error}", 200)
    return None


def wait_until_reachable(
    tracking_uri: str,
    *,
    wait_s: float,
    stop: threading.Event,
    on_failure: Callable[[str], None],
    retry_every_s: float = 2.0,
    timeout_s: float = 3.0,
) -> str | None:
    """Asks until the server answers, `wait_s` has passed or `stop` is set; None once it answers, else the last reason.

    `on_failure(reason)` is called on the first failure and whenever the reason changes.
    """
    deadline = time.monotonic() + wait_s
    told = None
    while True:
        reason = unreachable_reason(tracking_uri, timeout_s=timeout_s)
        if reason is None:
            return None
        if reason != told:
            on_failure(reason)
            told = reason
        left = deadline - time.monotonic()
        if left <= 0 or stop.wait(min(retry_every_s, left)):
            return reason
