"""``python -m regulas`` is the same as the ``regulas`` console script."""

from regulas.cli import console_main

console_main()
