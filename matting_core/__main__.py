import sys

from matting_core.cli import main

sys.exit(main())
