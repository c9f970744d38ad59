"""``python -m scmnet`` runs the command line."""

import sys

from scmnet.cli import main

if __name__ == "__main__":
    sys.exit(main())
