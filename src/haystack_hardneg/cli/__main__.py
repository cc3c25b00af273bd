import sys

from haystack_hardneg.cli import main

sys.exit(main())
