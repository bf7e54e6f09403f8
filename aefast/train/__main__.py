"""python -m aefast.train --help"""
import sys

from .cli import main

sys.exit(main())
