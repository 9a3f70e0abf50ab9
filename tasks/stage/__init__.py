"""Luigi tasks of the stage stage (to come)."""
