import sys

from vsslkit.cli import main

sys.exit(main())
