"""``python -m analogebl``: the ``analogebl`` command (:func:`analogebl.cli.main`)."""

import sys

from analogebl.cli import main

if __name__ == "__main__":
    sys.exit(main())
