"""The S3 endpoints Grange handles: one table, endpoint → handler (conventions, "Operation tables as data").

Endpoints routed but absent here answer 501 NotImplemented (the server checks).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from grange.api.s3 import bucket, copy, delete, get, list, multipart, put
from grange.api.s3.context import S3Request
from grange.api.s3.router import Endpoint

Handler = Callable[[S3Request], Awaitable[web.StreamResponse]]

HANDLERS: dict[Endpoint, Handler] = {
    Endpoint.ListBuckets: bucket.handle_list_buckets,
    Endpoint.CreateBucket: bucket.handle_create_bucket,
    Endpoint.HeadBucket: bucket.handle_head_bucket,
    Endpoint.DeleteBucket: bucket.handle_delete_bucket,
    Endpoint.GetBucketLocation: bucket.handle_get_bucket_location,
    Endpoint.GetBucketVersioning: bucket.handle_get_bucket_versioning,
    Endpoint.GetBucketAcl: bucket.handle_get_bucket_acl,
    Endpoint.ListObjects: list.handle_list_objects,
    Endpoint.ListObjectsV2: list.handle_list_objects_v2,
    Endpoint.GetObject: get.handle_get_object,
    Endpoint.HeadObject: get.handle_head_object,
    Endpoint.PutObject: put.handle_put_object,
    Endpoint.DeleteObject: delete.handle_delete_object,
    Endpoint.DeleteObjects: delete.handle_delete_objects,
    Endpoint.CopyObject: copy.handle_copy_object,
    Endpoint.UploadPartCopy: copy.handle_upload_part_copy,
    Endpoint.CreateMultipartUpload: multipart.handle_create_multipart_upload,
    Endpoint.UploadPart: multipart.handle_upload_part,
    Endpoint.CompleteMultipartUpload: multipart.handle_complete_multipart_upload,
    Endpoint.AbortMultipartUpload: multipart.handle_abort_multipart_upload,
    Endpoint.ListParts: multipart.handle_list_parts,
    Endpoint.ListMultipartUploads: multipart.handle_list_multipart_uploads,
}
