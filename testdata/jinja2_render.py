# Renders promptvault's differential test cases with Python's Jinja2.
# Reads a JSON list of {"template", "variables"} on stdin and writes a JSON
# list of {"out"} or {"error"}, in order. The environment matches
# promptvault's sandbox: strict undefined, no autoescape, the do and
# loopcontrols extensions, default whitespace settings.
import json
import sys

import jinja2
from jinja2.sandbox import SandboxedEnvironment

env = SandboxedEnvironment(
    undefined=jinja2.StrictUndefined,
    extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"],
)
out = []
for case in json.load(sys.stdin):
    try:
        out.append({"out": env.from_string(case["template"]).render(**case["variables"])})
    except Exception as e:  # any failure is an error case; its text is not compared
        out.append({"error": "%s: %s" % (type(e).__name__, e)})
json.dump(out, sys.stdout)
