import sys

from matting_core.cli import main

if __name__ == "__main__":  # spawn-based DataLoader workers re-import this module
    sys.exit(main())
