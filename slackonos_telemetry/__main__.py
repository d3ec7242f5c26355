import sys

from slackonos_telemetry.cli import main

sys.exit(main())
