"""``python -m trainlab`` is the same as the ``trainlab`` command (also under torchrun)."""

from trainlab.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
