"""Let one `websockets` server also answer Twilio's `POST /voice` webhook.

websockets parses GET requests only. This ServerConnection subclass holds back the bytes of a POST
request until its body is complete, then hands websockets the same request as a GET whose form body
travels in an `X-Kolbridge-Form` header (the body is application/x-www-form-urlencoded, so it is
header-safe ASCII). `process_request` sees `X-Kolbridge-Method: POST` and answers it like any HTTP
response. Nothing else about the connection changes.
"""
from __future__ import annotations

from websockets.asyncio.server import ServerConnection

MAX_POST_BYTES = 64 * 1024
FORM_HEADER = "X-Kolbridge-Form"
METHOD_HEADER = "X-Kolbridge-Method"


def rewrite_post(buffer: bytes) -> bytes | None:
    """The GET form of a complete POST request, or None while more bytes are needed; ValueError if the
    request cannot be one (a bad Content-Length)."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head, body = buffer[:head_end], buffer[head_end + 4:]
    lines = head.split(b"\r\n")
    method, _, rest = lines[0].partition(b" ")
    length = 0
    kept = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname == b"content-length":
            text = value.strip() or b"0"
            if not text.isdigit() or len(text) > 7:
                raise ValueError("bad Content-Length")
            length = int(text)
        elif lname in (b"transfer-encoding", FORM_HEADER.lower().encode(), METHOD_HEADER.lower().encode()):
            continue
        else:
            kept.append(line)
    if len(body) < length:
        return None
    form = body[:length].replace(b"\r", b"").replace(b"\n", b"")
    kept.append(METHOD_HEADER.encode() + b": " + method)
    kept.append(FORM_HEADER.encode() + b": " + form)
    return b"\r\n".join([b"GET " + rest, *kept]) + b"\r\n\r\n"


class HttpAwareConnection(ServerConnection):
    _pending: bytes | None = None
    _decided = False

    def data_received(self, data: bytes) -> None:
        if self._decided:
            super().data_received(data)
            return
        buffer = (self._pending or b"") + data
        if len(buffer) < 5 and b"POST "[: len(buffer)] == buffer:
            self._pending = buffer
            return
        if not buffer.startswith(b"POST "):
            self._decided, self._pending = True, None
            super().data_received(buffer)
            return
        if len(buffer) > MAX_POST_BYTES:
            self._decided = True
            self.transport.close()
            return
        try:
            rewritten = rewrite_post(buffer)
        except ValueError:
            self._decided = True
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.transport.close()
            return
        if rewritten is None:
            self._pending = buffer
            return
        self._decided, self._pending = True, None
        super().data_received(rewritten)
