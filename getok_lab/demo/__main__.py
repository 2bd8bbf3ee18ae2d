"""``python -m getok_lab.demo --out DIR [...]`` (the same as ``getok demo``)."""

import sys

from .cli import main

sys.exit(main())
