"""`python -m shopseq.cli`: the same as the `shopseq` command."""

import sys

from shopseq.cli import main

sys.exit(main())
