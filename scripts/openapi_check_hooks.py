"""schemathesis hooks of scripts/check-openapi.py (loaded through SCHEMATHESIS_HOOKS)."""
import schemathesis

# Every new dependency set of a function definition starts an environment build (pip in a
# container with network); generated requirement names would start hundreds of them.
DEFINITIONS = {"POST /functions", "POST /submit", "PUT /functions/{name}"}


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.operation.label in DEFINITIONS and isinstance(case.body, dict):
        case.body.pop("dependencies", None)
