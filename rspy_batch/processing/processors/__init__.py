"""Built-in processors, registered as ``rspy_batch.processors`` entry points in setup.cfg."""
