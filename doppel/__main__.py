"""`python -m doppel` runs the CLI."""

from doppel.cli import main

if __name__ == "__main__":      # not again in a spawned process (`render train --members`)
    main()
