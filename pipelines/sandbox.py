"""`accounting-etl sandbox`: serve one provider's sandbox on 127.0.0.1 until interrupted."""

from __future__ import annotations

import json
import signal
from types import FrameType
from typing import Any

from pipelines.registry import entry
from sources.common.provider import Provider


def environment_lines(provider: Provider, server: Any) -> list[str]:
    """The settings a user exports to point the pipeline at a sandbox (its keys are not secrets)."""
    return [
        f"export {provider.setting('base_url')}={server.url}",
        f"export {provider.setting('api_key')}={server.api_key}",
        f"export {provider.setting(provider.accounts_setting)}='{json.dumps(server.accounts())}'",
    ]


def serve(
    provider_name: str, port: int, rate_limit: int | None, seed: int | None, scale: float, delay_seconds: float
) -> None:
    chosen = entry(provider_name)
    server = chosen.sandbox.start_sandbox(port, rate_limit, seed, scale, delay_seconds)
    _stop_on_terminate()  # before the lines below: whoever waits for them may send SIGTERM at once
    try:
        print(f"{chosen.provider.title} sandbox on {server.url} (rate limit: {rate_limit or 'off'} requests/60s)")
        print("Point the pipeline at it with:")
        for line in environment_lines(chosen.provider, server):
            print(f"  {line}")
        print(
            f"Admin: GET {server.origin}/_sandbox/stats, POST {server.origin}/_sandbox/settings, "
            f"POST {server.origin}/_sandbox/faults. Ctrl-C stops it."
        )
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()


def _stop_on_terminate() -> None:
    """A SIGTERM (a supervisor, `kill`, a test ending) stops the server as Ctrl-C does, whatever the parent
    left: a disposition set to ignore, or a blocked mask, is inherited through exec, and a parent that ran
    Dagster in-process can leave SIGTERM mapped to its SIGINT handler, which may be an ignore."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    signal.signal(signal.SIGTERM, interrupt)
