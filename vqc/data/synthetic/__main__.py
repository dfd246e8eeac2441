"""``python -m vqc.data.synthetic``: the command line."""

import sys

from vqc.data.synthetic.cli import main

if __name__ == "__main__":
    sys.exit(main())
