"""The body-size limit, enforced before FastAPI reads (and parses) a body."""

from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse


class BodySizeLimit:
    """Answer 413 to a request body over ``max_bytes``, whether it is announced or chunked."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await self._reject(send, 400, "the Content-Length header is not a number")
                return
            if int(length) > self.max_bytes:
                await self._reject(send, 413, self._too_large(int(length)))
                return
            await self.app(scope, receive, send)
            return
        body, total = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                await self._reject(send, 413, self._too_large(total, more=True))
                return
            body.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self, size: int, more: bool = False) -> str:
        got = f"more than {size:,}" if more else f"{size:,}"
        return f"the request body is too large: {got} bytes, the limit is {self.max_bytes:,} bytes"

    @staticmethod
    async def _reject(send: Callable, status: int, detail: str) -> None:
        response = JSONResponse({"detail": detail}, status_code=status, headers={"Connection": "close"})
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})
