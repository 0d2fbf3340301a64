"""The OpenAI embeddings and audio transcription handlers; formats live in ``media_format``."""

from __future__ import annotations

import orjson
from fastapi import Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from palyra.daemon.server.json_response import JSONBytes
from palyra.daemon.surfaces import dispatch
from palyra.daemon.surfaces.openai.chat_api import app_state, read_body
from palyra.daemon.surfaces.openai.media_format import (
    embedding_list_json,
    parse_embedding_request,
    parse_transcription_fields,
    render_transcription,
)
from palyra.daemon.surfaces.wire_checks import load_json
from palyra.model import FailureClass, PalyraError, check_embedding_request
from palyra.model.embeddings import max_dimensions_for
from palyra.model.limits import check_embedding_dimensions


def _form_error(message: str, param: str | None = None) -> PalyraError:
    return PalyraError.of(FailureClass.INVALID_REQUEST, message, param=param)


async def embeddings(request: Request) -> Response:
    state = app_state(request)
    parsed = parse_embedding_request(
        load_json(await read_body(request, state.config.daemon.max_body_bytes))
    )
    model = dispatch.resolve(request, state, parsed.model, "embeddings")
    check_embedding_request(parsed, state.limits)
    maximum = max_dimensions_for(model.upstream_model, model.max_dimensions)
    check_embedding_dimensions(parsed, model.id, maximum)
    response, model_id = await dispatch.embed(request, state, parsed)
    body = orjson.dumps(embedding_list_json(response, parsed.encoding_format))
    return JSONBytes(body, {"x-palyra-model": model_id})


async def transcriptions(request: Request) -> Response:
    state = app_state(request)
    # Reading the body first bounds it; the form parser then works from the cached bytes.
    await read_body(request, state.config.daemon.max_body_bytes)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise _form_error(
            "audio/transcriptions takes multipart/form-data with a 'file' part and a 'model' "
            "field; send the audio as a file upload"
        )
    try:
        async with request.form() as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise _form_error("file: an audio file part named 'file' is required", "file")
            audio = await upload.read()
            fields = {key: [v for v in form.getlist(key) if isinstance(v, str)] for key in form}
            filename = upload.filename or "audio"
            media_type = upload.content_type or "application/octet-stream"
    except MultiPartException as exc:
        raise _form_error(f"the multipart body could not be read: {exc.message}") from exc
    parsed = parse_transcription_fields(
        fields, audio=audio, filename=filename, media_type=media_type, limits=state.limits
    )
    dispatch.resolve(request, state, parsed.model, "transcription")
    response, model_id = await dispatch.transcribe(request, state, parsed)
    body, is_text = render_transcription(response, parsed)
    headers = {"x-palyra-model": model_id}
    if is_text:
        return Response(body, media_type="text/plain; charset=utf-8", headers=headers)
    return JSONBytes(orjson.dumps(body), headers)
