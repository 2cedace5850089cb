#!/usr/bin/env python3
"""Dumps Dockerfiles through BuildKit's own parser (the `dockerfile` PyPI package, which wraps
it) in the JSON shape `strata parse --format json` prints, for the conformance tests.

Usage: dump.py FILE...   -> one JSON object {FILE: [instruction...] | {"error": "..."}}
Exit 3 when the `dockerfile` package is not installed.
"""
import json
import sys

try:
    import dockerfile
except ImportError:
    print("the dockerfile package is not installed (pip install dockerfile==3.4.0)", file=sys.stderr)
    sys.exit(3)


def convert(cmd):
    return {
        "cmd": cmd.cmd,
        "sub_cmd": cmd.sub_cmd,
        "json": cmd.json,
        "original": cmd.original,
        "start_line": cmd.start_line,
        "end_line": cmd.end_line,
        "flags": list(cmd.flags),
        "value": list(cmd.value),
        "heredocs": [{"name": h.name, "content": h.content} for h in cmd.heredocs],
    }


out = {}
for path in sys.argv[1:]:
    try:
        out[path] = [convert(c) for c in dockerfile.parse_file(path)]
    except dockerfile.GoParseError as e:
        out[path] = {"error": str(e)}
json.dump(out, sys.stdout)
