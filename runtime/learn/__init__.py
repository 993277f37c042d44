"""`bpfbox-learn`: draft a policy from learning runs, and turn denials into policy edits.

- `log`: the learning-log format (what a learning run records) and its reader;
- `decide`: the decision a compiled policy (the IR) makes on one access, on the host;
- `paths`: collapsing recorded paths into globs;
- `policy`: compiling policy text with the real compiler, and writing rules;
- `draft`: the draft policy; `suggest`: denials to unified diffs; `cli`: the command.
"""
