"""Luigi tasks of the process stage (to come)."""
