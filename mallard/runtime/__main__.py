"""`python -m mallard.runtime ...`"""

import sys

from mallard.runtime.cli import main

sys.exit(main())
