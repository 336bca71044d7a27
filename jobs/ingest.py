"""spark-submit entry point: ``spark-submit jobs/ingest.py ingest --landing ... --warehouse ...``.

Thin on purpose: it runs exactly what the ``feedlake`` console script runs.
"""

import sys

from feedlake.app.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
