"""EOPF CPM processing units (``eopf.computing.EOProcessingUnit``) run by ``eopf-cpm``.

These modules are imported by ``eopf trigger local`` inside the separate eopf venv
(:mod:`rspy_batch.processing.eopf_env`), not in ours: they may import only eopf, xarray,
numpy and the standard library, never the rest of ``rspy_batch``.
"""
