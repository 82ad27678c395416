"""Which ``Host`` headers the server answers: the defence against DNS rebinding.

A web page on any site can make a browser resolve its own domain to 127.0.0.1 and then
read what a local server answers, as if it were that site. The browser still sends the
attacker's domain in the ``Host`` header, so a server that answers only the names it is
really reached by (its loopback names, the address it is bound to, and names the user
allows) stays out of reach. starlette's TrustedHostMiddleware decides; :class:`HostCheck`
gives its refusal the service's error shape, a message that says how to allow a name.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import JSONResponse

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def host_pattern(host: str) -> str:
    """A bind address or host name as it appears in a Host header (IPv6 in brackets)."""
    host = host.strip().lower()
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def host_patterns(bind_host: str | None = None, extra: Sequence[str] = ()) -> list[str]:
    """The loopback names, the bound address and ``extra`` (``"*"`` allows any host,
    ``"*.example.com"`` any subdomain), without repeats."""
    names = [*LOOPBACK_HOSTS, *([bind_host] if bind_host else []), *extra]
    return list(dict.fromkeys(host_pattern(n) for n in names if n.strip()))


class HostCheck:
    """ASGI middleware answering 400 to a request whose Host header is not allowed."""

    def __init__(self, app, hosts: Sequence[str]):
        self.app = app
        self.hosts = list(hosts)
        # Invalid patterns (a '*' other than a leading '*.') fail here, at start-up.
        TrustedHostMiddleware(app, allowed_hosts=self.hosts)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":  # the service has no websockets
            await self.app(scope, receive, send)
            return
        accepted = False

        async def accept(_scope, _receive, _send) -> None:
            nonlocal accepted
            accepted = True

        async def discard(_message) -> None:  # starlette's own plain-text refusal
            pass

        await TrustedHostMiddleware(accept, allowed_hosts=self.hosts, www_redirect=False)(
            scope, receive, discard)
        if accepted:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        shown = repr(host[:100]) if host else "missing"
        body = {"detail": f"host: the Host header is {shown}, not a name this server answers to "
                          f"({', '.join(self.hosts)}); to reach it under another name, start it "
                          "with --allow-host NAME (this refusal guards against DNS rebinding)",
                "field": "host"}
        await JSONResponse(body, status_code=400)(scope, receive, send)
