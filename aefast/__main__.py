"""python -m aefast: the `aefast` command (see aefast/cli)."""
import sys

from .cli import main

sys.exit(main())
