"""Attachments over HTTP (PROTOCOL.md section 7): upload, download with ranges, preview.

    POST /api/attachments               raw body (X-Filename) or multipart (field `file`) -> 201
    GET  /api/attachments/{id}          the file, to its uploader, to members of a conversation
                                        that carries it, and to the school's principal (audited)
    GET  /api/attachments/{id}/preview  a small JPEG of an image or of a PDF's first page

Downloads are served as opaque files: `Content-Disposition: attachment`, `nosniff`, and a
Content-Security-Policy that lets nothing run even if a browser renders one.
"""

from __future__ import annotations

import anyio
import structlog
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from messaging.attachments import policy
from messaging.attachments.policy import Access, AccessFacts, ByteRange
from messaging.attachments.service import AttachmentService, Upload, UploadRefused
from messaging.domain.models import Person
from messaging.errors import ErrorCode, MessagingError
from messaging.gateway.api import ORJSONResponse, authenticated, error_response
from messaging.gateway.services import Services
from messaging.store import attachments as rows
from messaging.store.pool import translated_errors
from messaging.store.roster import load_person

log = structlog.get_logger(__name__)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox; frame-ancestors 'none'",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Referrer-Policy": "no-referrer",
    # photos of children and medical notes: kept by no shared cache, nor on disk by the browser
    "Cache-Control": "private, no-store",
}


# After an early refusal, how much of the rest of the body is read and thrown away (so that
# closing the connection does not reset it before the client has read the answer).
DRAIN_MAX_BYTES = 64 * 1024 * 1024
DRAIN_MAX_S = 10.0


class EarlyRefusal(Response):
    """An error answered before the request body was read in full: the answer goes out at once,
    then the rest of the body is drained (bounded) and the connection closed.

    Closing a socket with unread data makes the kernel send a reset, which can destroy the
    answer before a client reads it (a client that sends its whole body before reading, as most
    do, would see a broken connection instead of 413). Draining first is what web servers call a
    lingering close.
    """

    def __init__(self, response: Response, *, drain: bool) -> None:
        super().__init__(response.body, response.status_code, media_type=response.media_type)
        self.raw_headers = [*response.raw_headers, (b"connection", b"close")]
        self._drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send({"type": "http.response.body", "body": self.body, "more_body": True})
        if self._drain:
            with anyio.move_on_after(DRAIN_MAX_S):
                drained = 0
                while drained <= DRAIN_MAX_BYTES:
                    message = await receive()
                    if message["type"] != "http.request":
                        break
                    drained += len(message.get("body", b""))
                    if not message.get("more_body", False):
                        break
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _service(request: Request, svc: Services) -> AttachmentService:
    """Built on first use from the app's settings and pool (it holds no connection to close)."""
    service: AttachmentService | None = getattr(request.app.state, "attachments", None)
    if service is None:
        service = AttachmentService.from_settings(svc.settings, svc.pool)
        request.app.state.attachments = service
    return service


async def _active_person(svc: Services, subject: str) -> Person:
    async with translated_errors(), svc.pool.acquire() as db:
        person = await load_person(db, subject)
    if person is None or not person.active:
        raise MessagingError(ErrorCode.FORBIDDEN)
    return person


async def upload(request: Request, svc: Services, subject: str) -> Response:
    person = await _active_person(svc, subject)
    schools = {r.school for r in person.roles} | {c.school for c in person.children}
    if not await rows.allowed_in_any(svc.pool, sorted(schools)):
        raise MessagingError(ErrorCode.FEATURE_DISABLED, "attachments_disabled")
    service = _service(request, svc)
    try:
        row = await service.upload(
            Upload(
                owner=subject,
                body=request.stream(),
                content_type=request.headers.get("content-type"),
                content_length=request.headers.get("content-length"),
                name=policy.decode_header_name(request.headers.get("x-filename")),
            )
        )
    except ClientDisconnect:
        log.info("attachment_upload_abandoned")
        return Response(status_code=400)
    except UploadRefused as exc:
        log.info("attachment_upload_refused", code=exc.code.value, reason=exc.reason)
        response = error_response(request, exc, person)
        if exc.body_unread:
            expect = request.headers.get("expect", "").lower() == "100-continue"
            return EarlyRefusal(response, drain=not (expect and not exc.body_started))
        return response
    log.info("attachment_stored", attachment=row.id, type=row.type, size=row.size)
    return ORJSONResponse(
        {"id": row.id, "name": row.name, "type": row.type, "size": row.size, "sha256": row.sha256},
        status_code=201,
    )


async def _readable(request: Request, svc: Services, subject: str) -> rows.AttachmentRow:
    """The attachment if `subject` may read it (the principal's read recorded), else not_found."""
    attachment_id = request.path_params["id"]
    viewing = await rows.viewing(svc.pool, attachment_id, subject)
    if viewing is None:
        raise MessagingError(ErrorCode.NOT_FOUND)
    person = None
    if not viewing.member and viewing.row.owner != subject and viewing.carriers:
        async with translated_errors(), svc.pool.acquire() as db:
            person = await load_person(db, subject)
    carrier = rows.audited_carrier(viewing, person)
    access = policy.may_download(
        AccessFacts(
            is_owner=viewing.row.owner == subject,
            is_member=viewing.member,
            is_principal=carrier is not None,
        )
    )
    if access is None:
        raise MessagingError(ErrorCode.NOT_FOUND)
    if access is Access.AUDIT:
        assert carrier is not None
        conv, school = carrier
        await rows.record_audit_read(
            svc.pool,
            school=school,
            reader=subject,
            conv=conv,
            address=request.client.host if request.client is not None else None,
        )
        log.info("attachment_audit_read", attachment=attachment_id, conv=conv)
    return viewing.row


async def download(request: Request, svc: Services, subject: str) -> Response:
    row = await _readable(request, svc, subject)
    etag = f'"{row.sha256}"'
    headers = {
        **SECURITY_HEADERS,
        "Content-Disposition": policy.content_disposition(row.name),
        "Accept-Ranges": "bytes",
        "ETag": etag,
    }
    wanted = policy.parse_range(request.headers.get("range"), row.size)
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range != etag:
        wanted = None
    if isinstance(wanted, policy.Unsatisfiable):
        return Response(
            status_code=416, headers={**headers, "Content-Range": f"bytes */{row.size}"}
        )
    span = wanted if wanted is not None else ByteRange(0, row.size - 1)
    headers["Content-Length"] = str(span.length)
    if wanted is not None:
        headers["Content-Range"] = f"bytes {span.start}-{span.end}/{row.size}"
    body = _service(request, svc).storage.read(row.storage_key, span.start, span.end)
    return StreamingResponse(
        body, status_code=206 if wanted is not None else 200, headers=headers, media_type=row.type
    )


async def preview(request: Request, svc: Services, subject: str) -> Response:
    row = await _readable(request, svc, subject)
    if row.preview_key is None:
        raise MessagingError(ErrorCode.NOT_FOUND, "preview_unavailable")
    storage = _service(request, svc).storage
    data = b"".join([chunk async for chunk in storage.read(row.preview_key, 0, 2**40)])
    return Response(
        data,
        media_type="image/jpeg",
        headers={**SECURITY_HEADERS, "Content-Disposition": 'inline; filename="preview.jpg"'},
    )


routes = [
    Route("/api/attachments", authenticated(upload), methods=["POST"]),
    Route("/api/attachments/{id}", authenticated(download), methods=["GET"]),
    Route("/api/attachments/{id}/preview", authenticated(preview), methods=["GET"]),
]
