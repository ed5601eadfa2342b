"""Train a recurrent PPO agent: ``python train.py --help``."""

import sys

from agents.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
