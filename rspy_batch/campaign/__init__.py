"""Reprocessing campaigns: a YAML file run as one bounded Luigi graph."""
