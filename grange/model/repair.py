"""Consistency repairs over the local tables (Garage `model/...`, `garage/repair/online.rs`).

Each walks one local table and fixes what a lost reaction could have left behind:
- versions:         a live version that neither its object nor a live upload of it lists
                    → mark it deleted;
- multipartUploads: a live upload whose object has no such uploading version → deleted;
- blockRefs:        a live block ref whose version is gone or deleted → mark it deleted;
- blockRc:          recount every block's refcount from the local block_ref table.
Deletions go through the tables (quorum writes), so the usual reactions follow.
`purge_blocks` deletes every object version and upload that references given blocks
(an operator's last resort for blocks lost on every holder).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from grange.model.s3.block_ref_table import BlockRef
from grange.model.s3.mpu_table import MultipartUpload
from grange.model.s3.object_table import Aborted, Object, ObjectVersion
from grange.model.s3.version_table import Version
from grange.table.crdt import Bool

if TYPE_CHECKING:
    from grange.model.model import Model
    from grange.table.table import Table

log = logging.getLogger("grange.model")


def _local_entries(table: Table[Any]) -> list[Any]:
    return [table.schema.decode(raw) for _, raw in table.data.store.range()]


async def repair_versions(m: Model) -> int:
    fixed = 0
    for v in _local_entries(m.version_table):
        if v.deleted.get():
            continue
        obj = await m.object_table.get(v.bucket_id, v.key)
        if obj is not None and any(ov.uuid == v.uuid and not isinstance(ov.state, Aborted) for ov in obj.versions):
            continue  # an object version (or a completed upload's version)
        if obj is not None and await _is_part_of_live_upload(m, obj, v.uuid):
            continue  # a part of a multipart upload in progress
        await m.version_table.insert(Version.deleted_version(v.uuid, v.bucket_id, v.key))
        fixed += 1
    return fixed


async def _is_part_of_live_upload(m: Model, obj: Object, version_uuid: bytes) -> bool:
    for ov in obj.versions:
        if ov.is_uploading(multipart=True):
            mpu = await m.mpu_table.get(ov.uuid)
            if mpu is not None and not mpu.deleted.get() and any(
                    part.version == version_uuid for _, part in mpu.parts.items()):
                return True
    return False


async def repair_mpu(m: Model) -> int:
    fixed = 0
    for u in _local_entries(m.mpu_table):
        if u.deleted.get():
            continue
        obj = await m.object_table.get(u.bucket_id, u.key)
        if obj is None or not any(ov.uuid == u.upload_id and ov.is_uploading(multipart=True) for ov in obj.versions):
            await m.mpu_table.insert(MultipartUpload.deleted_upload(u.upload_id, u.bucket_id, u.key))
            fixed += 1
    return fixed


async def repair_block_refs(m: Model) -> int:
    fixed = 0
    for r in _local_entries(m.block_ref_table):
        if r.deleted.get():
            continue
        v = await m.version_table.get(r.version)
        if v is None or v.deleted.get():
            await m.block_ref_table.insert(BlockRef(r.block, r.version, Bool(True)))
            fixed += 1
    return fixed


async def repair_block_rc(m: Model) -> int:
    counts: dict[bytes, int] = {}
    for r in _local_entries(m.block_ref_table):
        counts[r.block] = counts.get(r.block, 0) + (0 if r.deleted.get() else 1)
    for block, _ in list(m.blocks.rc.tree.range()):
        counts.setdefault(block, 0)
    for block, n in counts.items():
        if m.blocks.rc.count(block) != n:
            m.blocks.rc.recount(block, n)
    m.blocks.resync.wake.set()
    return len(counts)


async def purge_blocks(m: Model, hashes: list[bytes]) -> dict[str, int]:
    out = {"blocksPurged": 0, "objectsDeleted": 0, "uploadsDeleted": 0, "versionsDeleted": 0, "blockRefsPurged": 0}
    for h in hashes:
        for ref in await m.block_ref_table.get_range(h, limit=100_000):
            v = await m.version_table.get(ref.version)
            if v is not None and not v.deleted.get():
                obj = await m.object_table.get(v.bucket_id, v.key)
                if obj is not None:
                    for ov in obj.versions:
                        if ov.uuid == v.uuid:
                            aborted = Object(v.bucket_id, v.key, (ObjectVersion(ov.uuid, ov.timestamp, Aborted()),))
                            await m.object_table.insert(aborted)
                            out["objectsDeleted"] += 1
                mpu = await m.mpu_table.get(v.uuid)
                if mpu is not None and not mpu.deleted.get():
                    await m.mpu_table.insert(MultipartUpload.deleted_upload(v.uuid, v.bucket_id, v.key))
                    out["uploadsDeleted"] += 1
                await m.version_table.insert(Version.deleted_version(v.uuid, v.bucket_id, v.key))
                out["versionsDeleted"] += 1
            if not ref.deleted.get():
                await m.block_ref_table.insert(BlockRef(h, ref.version, Bool(True)))
                out["blockRefsPurged"] += 1
        out["blocksPurged"] += 1
    log.warning("[%s] purged blocks %s: %s", m.id[:8], [h.hex()[:16] for h in hashes], out)
    return out


REPAIRS = {
    "versions": repair_versions,
    "multipartUploads": repair_mpu,
    "blockRefs": repair_block_refs,
    "blockRc": repair_block_rc,
}
