"""The HTTP server's own refusal in the API's error shape.

A request the HTTP parser cannot read (a URL or a header over httptools' 64 KiB, a
malformed request line) never reaches the app: uvicorn answers it with a plain-text 400.
This protocol answers the same 400 with the JSON every other error has, so a client that
reads ``code`` on errors needs no special case for it. ``papersearch serve`` runs uvicorn
with it (``HTTP_PROTOCOL``).
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from service.errors import BadRequest, error_response

# For uvicorn's ``http=``: an import string, so worker processes load it themselves.
HTTP_PROTOCOL = "service.http_server:JsonErrorHttpToolsProtocol"

UNREADABLE = BadRequest(
    "the HTTP request could not be read: a URL or header over 64 KiB, or a malformed "
    "request line; send a long query as POST /search"
)


class JsonErrorHttpToolsProtocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        """As uvicorn's own (``msg`` goes to its log already), with the JSON error body."""
        response = error_response(UNREADABLE)
        content = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(response.body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                bytes(response.body),
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()
