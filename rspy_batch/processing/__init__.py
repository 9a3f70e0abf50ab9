"""Processing: EOPF Zarr products, the processor registry, and the window runner."""
