"""rspy-batch: Copernicus ground-segment batch jobs over a static STAC catalog."""

__version__ = "0.1.0"
