"""JSON: the C encoder and scanner of the json package, used directly. Importing the
package (with re and enum, which only its pure-Python fallbacks and its error type
need) was a quarter of the agent's start-up. json_dumps gives the text json.dumps
gives and json_loads the values json.loads gives; where the C module is missing or
differs (another interpreter), the json package does the work."""

class _ScanContext:
    """The attributes _json's scanner reads off a json.JSONDecoder: json.loads' defaults."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # NaN, Infinity, -Infinity


def _not_serializable(obj):
    raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)


def _c_encoder(ensure_ascii, separators, allow_nan):
    """_json's encoder as json.dumps builds it (a fresh one per call: it keeps the
    markers of the objects it is inside of)."""
    quote = _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring
    item_separator, key_separator = separators
    return _json.make_encoder({}, _not_serializable, quote, None, key_separator,
                              item_separator, False, False, allow_nan)


try:
    import _json
    _scan_once = _json.make_scanner(_ScanContext)
    _c_encoder(False, (",", ":"), True)
except Exception:  # ImportError, or a _json of another shape
    _json = None

_JSON_SPACE = " \t\n\r"


def json_dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=True):
    """json.dumps(obj, ensure_ascii=..., separators=..., allow_nan=...)."""
    if _json is None:
        import json
        return json.dumps(obj, ensure_ascii=ensure_ascii, separators=separators,
                          allow_nan=allow_nan)
    return "".join(_c_encoder(ensure_ascii, separators, allow_nan)(obj, 0))


def json_loads(data):
    """json.loads(data) of a str or of UTF-8 bytes; malformed input raises ValueError."""
    if isinstance(data, (bytes, bytearray)):
        data = data.decode("utf-8")
    if _json is None:
        import json
        return json.loads(data)
    start = len(data) - len(data.lstrip(_JSON_SPACE))
    try:
        value, end = _scan_once(data, start)
    except StopIteration as stop:
        raise ValueError("Expecting value: char %d" % stop.value)
    if data[end:].strip(_JSON_SPACE):
        raise ValueError("Extra data: char %d" % end)
    return value
