import sys

from digestd.cli import main

sys.exit(main())
