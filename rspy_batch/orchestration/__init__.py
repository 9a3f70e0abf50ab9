"""Glue between the library and Luigi: targets that read the catalog, exit codes."""
