"""`python -m accelerated.train`: not built yet (issue 5)."""

import sys

if __name__ == "__main__":
    sys.exit("accelerated.train is not built yet: training arrives with the models (issue 5).")
