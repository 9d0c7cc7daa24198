"""``python -m zoo.lightning fit ...``: see :mod:`zoo.lightning`."""
from zoo.lightning import main

main()
