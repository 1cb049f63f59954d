"""`python -m offline preview|up|destroy STACK`: see offline/cli.py."""

import sys

from .cli import main

sys.exit(main())
