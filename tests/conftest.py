import sys
from pathlib import Path

# Tests import the project as installed (pip install -e .); this keeps a bare checkout working too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
