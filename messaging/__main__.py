import sys

from messaging.cli import main

sys.exit(main())
