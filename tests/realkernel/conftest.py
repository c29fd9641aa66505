import sys
from pathlib import Path

# The hub clients of the integration tests (hubclient.py) serve here too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
