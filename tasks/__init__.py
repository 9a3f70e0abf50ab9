"""Luigi tasks: thin ``requires``/``output``/``run`` layers over :mod:`rspy_batch`."""
