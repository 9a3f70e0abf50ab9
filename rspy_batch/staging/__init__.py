"""Staging: copy the station files an item's assets point at into the staging store
(S3 or a local directory), verified, and point the catalog at the copies.

``keys`` (where a file goes), ``state`` (what "staged" means in an item: pure),
``sinks`` (S3 multipart / local file writes that become visible only when verified),
``transfer`` (one file: stream, verify, retry), ``lta`` (order, then wait),
``stage`` (one collection window: plan, run in parallel, update items, record).
"""
