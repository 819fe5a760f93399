"""Commands that rebuild the shipped weights in ``models/`` from ../shared/eval."""
