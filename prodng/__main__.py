import sys

from prodng.cli import main

sys.exit(main())
