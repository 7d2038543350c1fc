#!/usr/bin/env python3
"""Container health check: exit 0 when this container's Frontdesk process answers GET /healthz.

Standard library only (it runs inside the image, and in the NLU image with Rasa's Python).  Which URL:
FRONTDESK_HEALTHCHECK_URL if set; otherwise http://127.0.0.1:<FRONTDESK_HTTP_PORT>/healthz (the desk,
`frontdesk run`) and then http://127.0.0.1:<FRONTDESK_METRICS_PORT>/healthz (a worker).  ``$VAR`` in the
URL is replaced by that environment variable (the NLU image: ``/status?token=$FRONTDESK_NLU_AUTH_TOKEN``);
what is printed is the URL as written, so a token never reaches the health log.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def _candidates() -> list[str]:
    explicit = os.environ.get("FRONTDESK_HEALTHCHECK_URL")
    if explicit:
        return [explicit]
    urls = [f"http://127.0.0.1:{os.environ.get('FRONTDESK_HTTP_PORT', '8000')}/healthz"]
    metrics_port = os.environ.get("FRONTDESK_METRICS_PORT", "9100")
    if metrics_port and metrics_port != "0":
        urls.append(f"http://127.0.0.1:{metrics_port}/healthz")
    return urls


def main() -> int:
    errors = []
    for url in _candidates():
        try:
            with urllib.request.urlopen(os.path.expandvars(url), timeout=4) as response:  # noqa: S310 - loopback
                if 200 <= response.status < 300:
                    return 0
                errors.append(f"{url}: HTTP {response.status}")
        except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy"
            errors.append(f"{url}: {exc}")
    print("unhealthy: " + "; ".join(errors), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
