import sys

from meridian_hotpath.cli import main

sys.exit(main())
