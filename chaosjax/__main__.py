import sys

from chaosjax.cli import main

sys.exit(main())
