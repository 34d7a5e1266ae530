"""``python -m pyinfer info | bench``: see pyinfer.cli."""
import sys

from .cli import main

sys.exit(main())
