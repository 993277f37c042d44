"""The checkout itself as the `bpfbox` package, for running it without installing it.

Installed, the top-level folders compiler/, runtime/, grammar/ and codegen_templates/ become
`bpfbox.compiler` and so on (pyproject.toml).  With this folder's parent on PYTHONPATH (the
Makefile and tests/conftest.py put it there), `bpfbox` is the checkout this file lives in, so
tests and tools never import another copy that happens to be installed.
"""

from pathlib import Path

__path__ = [str(Path(__file__).resolve().parents[3])]
