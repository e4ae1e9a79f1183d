"""DeleteObject and DeleteObjects: one quorum write of a delete marker per key (design §10)."""

from __future__ import annotations

from aiohttp import web

from grange.api.s3 import errors as s3err
from grange.api.s3 import xml
from grange.api.s3.context import S3Request
from grange.model.s3 import objects

DELETE_OBJECTS_MAX = 1000
DELETE_BODY_MAX = 2 * 1024 * 1024


async def handle_delete_object(req: S3Request) -> web.Response:
    assert req.bucket_id is not None and req.route.key is not None
    await objects.delete_object(req.model, req.bucket_id, req.route.key)
    return web.Response(status=204)


async def handle_delete_objects(req: S3Request) -> web.Response:
    assert req.bucket_id is not None
    body = await req.read_body(DELETE_BODY_MAX)
    request = xml.parse_delete(body)
    if len(request.objects) > DELETE_OBJECTS_MAX:
        raise s3err.MalformedXML(f"at most {DELETE_OBJECTS_MAX} keys per DeleteObjects request")
    deleted, errors = [], []
    for obj in request.objects:
        try:
            await objects.delete_object(req.model, req.bucket_id, obj.key)
            if not request.quiet:
                deleted.append(xml.Deleted(obj.key))
        except Exception as e:  # one key's failure is reported for that key
            err = s3err.from_exception(e)
            errors.append(xml.DeleteError(obj.key, err.code, err.message))
    return web.Response(body=xml.delete_result(deleted, errors), content_type="application/xml")
