"""Luigi tasks of the publish stage (to come)."""
