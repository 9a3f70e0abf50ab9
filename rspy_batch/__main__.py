"""``python -m rspy_batch`` runs the command line."""

from rspy_batch.cli import main

if __name__ == "__main__":
    main()
