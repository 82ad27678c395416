"""``python -m polymodal.cli``: the same as the ``polymodal`` script."""

from polymodal.cli import main

main()
