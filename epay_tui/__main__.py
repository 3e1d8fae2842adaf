"""``python -m epay_tui``."""

import sys

from epay_tui.cli import main

sys.exit(main())
