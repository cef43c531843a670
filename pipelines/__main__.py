"""`python -m pipelines` is `accounting-etl`."""

import sys

from pipelines.cli import main

sys.exit(main())
