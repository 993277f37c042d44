"""`python -m bpfbox.compiler` is `bpfboxc`."""

from .cli import main

main()
