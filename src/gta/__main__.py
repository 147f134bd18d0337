"""``python -m gta``: the command line (also for ``torchrun -m gta extract ...``)."""

from gta.cli import main

if __name__ == "__main__":
    main()
