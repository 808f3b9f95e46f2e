"""``python -m trainlab`` is the same as the ``trainlab`` command (also under torchrun)."""

from trainlab.cli.main import entry

if __name__ == "__main__":
    entry()
