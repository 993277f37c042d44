"""Reading the JSON-lines files bpfbox-learn is given (learning logs, bpfbox-run's event logs).

They may come from anywhere, so each is read as the compiler reads a policy: a regular file
only (a FIFO would block the reader forever), of bounded size, and each line a JSON object of
bounded length and depth (`json.loads` alone recurses once per `[`).  Errors of a line name
the file and line; the caller chooses their type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bpfbox.compiler import files
from bpfbox.runtime import bounded_json

#: A whole log: far beyond what a learning run writes (a line per distinct access).
MAX_LOG_BYTES = 1024 * files.MIB
#: One record: far beyond an access with its 32-frame stack and its scan.
MAX_RECORD_CHARS = files.MIB
#: A record nests an object in a list in an object (a stack frame): far below this.
MAX_RECORD_DEPTH = 16


def read_lines(path: Path, what: str, error: type[Exception]) -> list[str]:
    """The lines of the log at `path` (`what` names it: "a learning log").  A file that is
    not a regular one, or too large, raises files.InputFileError: an environment problem,
    not a log's."""
    data = files.read_regular(path, what, MAX_LOG_BYTES)
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise error(f"`{path}` is not a text file: {what} is UTF-8 JSON lines") from None


def json_object(line: str, where: str, error: type[Exception]) -> dict[str, Any]:
    """The JSON object on a line of a log (`where`: FILE:LINE)."""
    try:
        record = bounded_json.loads(line, max_chars=MAX_RECORD_CHARS, max_depth=MAX_RECORD_DEPTH)
    except bounded_json.BoundedJsonError as problem:
        raise error(f"{where}: {problem}") from None
    if not isinstance(record, dict):
        raise error(f"{where}: a record must be a JSON object")
    return record
