"""Opt-in recording of HTTP exchanges (httpx, httpx2 and requests), so agent replay can serve
them.

Inside a run, each exchange is recorded as an ``http`` event: the request (method, URL, headers,
body) in ``args``, the response (status, headers, body) in ``output``. Streamed responses
(server-sent events included) are recorded as the agent reads them, when the stream ends or is
closed. Credentials never reach the store: authorization and cookie headers and secret-looking
query parameters are replaced before the event is built, and the recorder's redaction rules
run on the rest. ``tracekit export`` turns these events into the bundle's vcrpy cassette.

    import httpx, tracekit.http

    client = httpx.Client(transport=tracekit.http.HTTPXTransport())
    async_client = httpx.AsyncClient(transport=tracekit.http.AsyncHTTPXTransport())
    sdk_client = openai.DefaultHttpxClient(transport=tracekit.http.HTTPXTransport())  # httpx2

The same transports serve httpx and httpx2 (the fork the openai and anthropic SDKs use): each
speaks the library of the request it is handed, and passes it on to that library's own
transport unless given ``inner``.

    session = tracekit.http.instrument_requests(requests.Session())

Outside a run the exchange passes through unrecorded.
"""

from __future__ import annotations

import base64
import functools
import sys
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from ._base.encode import canonical_json
from ._base.redact import MARKER
from ._base.urls import SECRET_HEADERS, scrub_headers, scrub_url, secrets_in
from ._base.vocab import EventStatus
from ._capture.run import Run, current_run
from ._capture.state import PROCESS

__all__ = ["SECRET_HEADERS", "AsyncHTTPXTransport", "HTTPXTransport", "instrument_requests"]


def _body(data: bytes | None) -> dict[str, Any]:
    """A body as its text, byte for byte (replay serves it back as it came), run through the
    redaction rules (a JSON body with its keys: only a body that held a secret changes);
    base64 when it is not text."""
    if not data:
        return {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}
    return {"text": PROCESS.settings().redactor.redact_json(text)[0]}


def _decoded(data: bytes, encoding: str | None) -> tuple[bytes, bool]:
    """The body with its content-encoding undone (gzip, deflate); (data, decoded?)."""
    encoding = (encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return data, True
    try:
        if encoding in ("gzip", "x-gzip"):
            return zlib.decompress(data, 16 + zlib.MAX_WBITS), True
        if encoding == "deflate":
            try:
                return zlib.decompress(data), True
            except zlib.error:
                return zlib.decompress(data, -zlib.MAX_WBITS), True
    except zlib.error:
        pass
    return data, False


def request_doc(
    method: str, url: str, headers: Iterable[tuple[str, str]], body: bytes | None
) -> dict[str, Any]:
    return {
        "method": method.upper(),
        "url": scrub_url(url),
        "headers": scrub_headers(headers),
        **_body(body),
    }


def response_doc(
    status: int, reason: str, headers: Iterable[tuple[str, str]], raw: bytes, streamed: bool
) -> dict[str, Any]:
    listed = scrub_headers(headers)
    data, decoded = _decoded(raw, listed.get("content-encoding"))
    if decoded:
        listed.pop("content-encoding", None)
        listed.pop("content-length", None)
    doc = {"status": status, "reason": reason, "headers": listed, **_body(data)}
    if streamed:
        doc["streamed"] = True
    return doc


def record_exchange(
    run: Run,
    request: dict[str, Any],
    response: dict[str, Any] | None,
    started: float,
    error: BaseException | None = None,
    secrets: list[str] | None = None,
) -> None:
    """One ``http`` event in ``run``; ``secrets`` are scrubbed from an error's text."""
    parts = urlsplit(request["url"])
    host = parts.hostname or ""
    text = None if error is None else f"{type(error).__name__}: {error}"
    for secret in secrets or ():
        text = text.replace(secret, MARKER) if text else text
    run._record(
        "http",
        name=f"{request['method']} {host}{f':{parts.port}' if parts.port else ''}{parts.path}",
        args=canonical_json(request),
        output=None if response is None else canonical_json(response),
        status=EventStatus.ERROR
        if error is not None or (response or {}).get("status", 0) >= 400
        else "ok",
        error=text,
        latency_ms=(time.perf_counter() - started) * 1000.0,
    )


class _Tee:
    """Collects a response body as the agent reads it; records the exchange once, at the end.

    ``decoded`` says whether the chunks had their content-encoding undone already."""

    def __init__(self, done: Callable[[bytes, bool], None]) -> None:
        self.chunks: list[bytes] = []
        self.decoded = False
        self._done: Callable[[bytes, bool], None] | None = done

    def add(self, chunk: bytes) -> bytes:
        self.chunks.append(chunk)
        return chunk

    def finish(self) -> None:
        done, self._done = self._done, None
        if done is not None:
            done(b"".join(self.chunks), self.decoded)


# -- httpx and httpx2 -------------------------------------------------------------------------
def _httpx() -> Any:
    try:
        import httpx
    except ImportError:  # pragma: no cover - the hook is opt-in
        raise ImportError("tracekit.http's httpx hook needs httpx: pip install httpx") from None
    return httpx


def library_of(request: Any) -> Any:
    """The library a request belongs to: httpx, or httpx2 (its fork, under the SDKs)."""
    return sys.modules[type(request).__module__.partition(".")[0]]


def _httpx_exchange(request: Any) -> tuple[Run | None, dict[str, Any] | None, float]:
    run = current_run()
    if run is None:
        return None, None, 0.0
    doc = request_doc(
        request.method, str(request.url), request.headers.multi_items(), request.content
    )
    return run, doc, time.perf_counter()


def _httpx_secrets(request: Any) -> list[str]:
    return secrets_in(str(request.url), request.headers.multi_items())


def _httpx_done(
    run: Run, doc: dict[str, Any], started: float, response: Any, streamed: bool
) -> Callable[[bytes, bool], None]:
    def done(raw: bytes, decoded: bool) -> None:
        record_exchange(
            run,
            doc,
            response_doc(
                response.status_code,
                response.reason_phrase,
                response.headers.multi_items(),
                raw,
                streamed,
            ),
            started,
        )

    return done


def _is_stream(response: Any) -> bool:
    kind = response.headers.get("content-type", "")
    return "text/event-stream" in kind or "chunked" in response.headers.get("transfer-encoding", "")


def _teed(
    run: Run, doc: dict[str, Any], started: float, request: Any, response: Any, asynchronous: bool
) -> Any:
    """The response the caller gets: the same, its body teed into the exchange's record."""
    lib = library_of(request)
    tee = _Tee(_httpx_done(run, doc, started, response, _is_stream(response)))
    stream_type = _tees(lib.__name__)[asynchronous]
    return lib.Response(
        response.status_code,
        headers=response.headers,
        stream=stream_type(response.stream, tee),
        extensions=response.extensions,
        request=request,
    )


class HTTPXTransport:
    """An httpx (or httpx2) transport that records every exchange made inside a run, then
    passes it on to ``inner`` (default: the request's library's ``HTTPTransport()``)."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner

    def _inner_for(self, request: Any) -> Any:
        if self.inner is None:
            self.inner = library_of(request).HTTPTransport()
        return self.inner

    def handle_request(self, request: Any) -> Any:
        request.read()
        inner = self._inner_for(request)
        run, doc, started = _httpx_exchange(request)
        if run is None or doc is None:  # outside a run: not recorded
            return inner.handle_request(request)
        try:
            response = inner.handle_request(request)
        except Exception as exc:
            record_exchange(run, doc, None, started, exc, _httpx_secrets(request))
            raise
        return _teed(run, doc, started, request, response, False)

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()

    def __enter__(self) -> HTTPXTransport:
        if self.inner is not None:
            self.inner.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.inner is not None:
            self.inner.__exit__(*exc)


class AsyncHTTPXTransport:
    """The asyncio twin of ``HTTPXTransport`` (inner default: the request's library's
    ``AsyncHTTPTransport()``)."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner

    def _inner_for(self, request: Any) -> Any:
        if self.inner is None:
            self.inner = library_of(request).AsyncHTTPTransport()
        return self.inner

    async def handle_async_request(self, request: Any) -> Any:
        await request.aread()
        inner = self._inner_for(request)
        run, doc, started = _httpx_exchange(request)
        if run is None or doc is None:
            return await inner.handle_async_request(request)
        try:
            response = await inner.handle_async_request(request)
        except Exception as exc:
            record_exchange(run, doc, None, started, exc, _httpx_secrets(request))
            raise
        return _teed(run, doc, started, request, response, True)

    async def aclose(self) -> None:
        if self.inner is not None:
            await self.inner.aclose()

    async def __aenter__(self) -> AsyncHTTPXTransport:
        if self.inner is not None:
            await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.inner is not None:
            await self.inner.__aexit__(*exc)


@functools.cache
def _tees(library: str) -> tuple[type, type]:
    """The library's stream types over the inner stream, teeing what is read (httpx and httpx2
    each ask for their own base classes, so they are made when the library is first used)."""
    lib = sys.modules[library]

    sync_base: Any = lib.SyncByteStream
    async_base: Any = lib.AsyncByteStream

    class SyncTee(sync_base):  # type: ignore[misc]
        def __init__(self, inner: Any, tee: _Tee) -> None:
            self.inner, self.tee = inner, tee

        def __iter__(self) -> Iterator[bytes]:
            for chunk in self.inner:
                yield self.tee.add(chunk)
            self.tee.finish()

        def close(self) -> None:
            try:
                self.inner.close()
            finally:
                self.tee.finish()

    class AsyncTee(async_base):  # type: ignore[misc]
        def __init__(self, inner: Any, tee: _Tee) -> None:
            self.inner, self.tee = inner, tee

        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for chunk in self.inner:
                yield self.tee.add(chunk)
            self.tee.finish()

        async def aclose(self) -> None:
            try:
                await self.inner.aclose()
            finally:
                self.tee.finish()

    return SyncTee, AsyncTee


# -- requests ----------------------------------------------------------------------------------
def instrument_requests(session: Any) -> Any:
    """Mount a recording adapter on ``session`` for http:// and https://; returns the session."""
    adapter = _requests_adapter()()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _requests_adapter() -> type:
    try:
        from requests.adapters import HTTPAdapter
    except ImportError:  # pragma: no cover - the hook is opt-in
        raise ImportError(
            "tracekit.http's requests hook needs requests: pip install requests"
        ) from None

    class RecordingAdapter(HTTPAdapter):
        """Records each exchange made inside a run (the body as the caller reads it)."""

        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            run = current_run()
            if run is None:
                return super().send(request, *args, **kwargs)
            body = request.body.encode() if isinstance(request.body, str) else request.body
            doc = request_doc(
                request.method or "GET",
                request.url or "",
                request.headers.items(),
                body if isinstance(body, bytes) else None,
            )
            started = time.perf_counter()
            try:
                response = super().send(request, *args, **kwargs)
            except Exception as exc:
                record_exchange(
                    run,
                    doc,
                    None,
                    started,
                    exc,
                    secrets_in(request.url or "", request.headers.items()),
                )
                raise
            response.raw = _RawTee(
                response.raw,
                _Tee(_requests_done(run, doc, started, response, bool(kwargs.get("stream")))),
            )
            return response

    return RecordingAdapter


def _requests_done(
    run: Run, doc: dict[str, Any], started: float, response: Any, streamed: bool
) -> Callable[[bytes, bool], None]:
    def done(body: bytes, decoded: bool) -> None:
        headers = [
            (k, v)
            for k, v in response.headers.items()
            if not decoded or k.lower() not in ("content-encoding", "content-length")
        ]
        record_exchange(
            run,
            doc,
            response_doc(response.status_code, response.reason or "", headers, body, streamed),
            started,
        )

    return done


class _RawTee:
    """urllib3's response, teeing the body as the caller reads it (decoded or not)."""

    def __init__(self, raw: Any, tee: _Tee) -> None:
        self._raw, self._tee = raw, tee

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def _decoding(self, decode_content: bool | None) -> bool | None:
        if decode_content is None:
            decode_content = getattr(self._raw, "decode_content", None)
        self._tee.decoded = bool(decode_content)
        return decode_content

    def stream(self, amt: int | None = 2**16, decode_content: bool | None = None) -> Any:
        for chunk in self._raw.stream(amt, decode_content=self._decoding(decode_content)):
            yield self._tee.add(chunk)
        self._tee.finish()

    def read(
        self, amt: int | None = None, decode_content: bool | None = None, *args: Any, **kwargs: Any
    ) -> bytes:
        data = self._tee.add(self._raw.read(amt, self._decoding(decode_content), *args, **kwargs))
        if amt is None or not data:
            self._tee.finish()
        return data

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            self._tee.finish()

    def release_conn(self) -> None:
        self._tee.finish()
        self._raw.release_conn()
