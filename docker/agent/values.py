"""A run's value (cell mode, `call`, `check`) as JSON within the output cap, or else
its repr() cut at the cap."""

import builtins
import sys

from .capture import utf8_cut
from .json_codec import json_dumps


class _TooLarge(Exception):
    pass


class _NotJson(Exception):
    pass


_VALUE_REPR = None


def value_repr_class():
    """The bounded repr() of values (reprlib is imported by the first run that needs it)."""
    global _VALUE_REPR
    if _VALUE_REPR is not None:
        return _VALUE_REPR
    import reprlib

    class ValueRepr(reprlib.Repr):
        """repr() with bounds on containers, strings and bytes; dicts keep their order."""

        def __init__(self, limit):
            reprlib.Repr.__init__(self)
            self.maxlevel = 20
            self.maxtuple = self.maxlist = self.maxarray = self.maxdict = 10000
            self.maxset = self.maxfrozenset = self.maxdeque = 10000
            self.maxstring = self.maxother = self.maxlong = max(limit, 64)
            self._active = set()

        def repr1(self, x, level):
            # reprlib has no cycle detection of its own (builtin repr() has).
            if isinstance(x, (list, dict, set, frozenset, tuple)) or type(x).__name__ == "deque":
                ident = id(x)
                if ident in self._active:
                    return "[...]" if isinstance(x, list) else "{...}" if isinstance(x, dict) else "..."
                self._active.add(ident)
                try:
                    return reprlib.Repr.repr1(self, x, level)
                finally:
                    self._active.discard(ident)
            return reprlib.Repr.repr1(self, x, level)

        def repr_dict(self, x, level):
            if not x:
                return "{}"
            if level <= 0:
                return "{...}"
            pieces = []
            for index, (key, value) in enumerate(x.items()):
                if index >= self.maxdict:
                    pieces.append("...")
                    break
                pieces.append("%s: %s" % (self.repr1(key, level - 1), self.repr1(value, level - 1)))
            return "{%s}" % ", ".join(pieces)

        def repr_bytes(self, x, level):
            if len(x) > self.maxstring:
                return builtins.repr(x[:self.maxstring]) + "..."
            return builtins.repr(x)

        def repr_bytearray(self, x, level):
            if len(x) > self.maxstring:
                return "bytearray(%s...)" % builtins.repr(bytes(x[:self.maxstring]))
            return builtins.repr(x)

    _VALUE_REPR = ValueRepr
    return ValueRepr


def bounded_repr(value, limit):
    """(text, truncated): repr() cut at `limit` UTF-8 bytes; never raises."""
    try:
        text = value_repr_class()(limit).repr(value)
    except BaseException as e:  # a __repr__ that raises anything at all
        try:
            text = "<%s object (repr failed: %s)>" % (type(value).__name__, type(e).__name__)
        except BaseException:
            text = "<unrepresentable object>"
    encoded = text.encode("utf-8", "replace")
    if len(encoded) > limit:
        return utf8_cut(encoded, limit).decode("utf-8", "replace"), True
    return text, False


def _key(key):
    if isinstance(key, str):
        return "".join((key,))
    if key is None:
        return "null"
    if key is True:
        return "true"
    if key is False:
        return "false"
    if isinstance(key, int):
        return str(int(key))
    if isinstance(key, float):
        return float.__repr__(key)
    return str(key)


def _to_json(obj, budget, depth, active):
    t = type(obj)
    if obj is None or t is bool:
        budget[0] -= 5
    elif t is int:
        budget[0] -= obj.bit_length() // 3 + 2
        if obj.bit_length() > 14000:
            raise _NotJson()
    elif t is float:
        budget[0] -= 24
        if obj != obj or obj in (float("inf"), float("-inf")):
            obj = None
    elif t is str:
        budget[0] -= len(obj) + 2
    else:
        return _to_json_other(obj, t, budget, depth, active)
    if budget[0] < 0:
        raise _TooLarge()
    return obj


def _to_json_other(obj, t, budget, depth, active):
    if depth > 100:
        raise _NotJson()
    # A date or time can exist only once its module was imported; the agent does not.
    datetime = sys.modules.get("datetime")
    module = getattr(t, "__module__", "") or ""
    if module.startswith("numpy"):
        if hasattr(obj, "ndim") and hasattr(obj, "tolist") and getattr(obj, "ndim", 0) > 0:
            if int(getattr(obj, "size", 0)) * 2 > budget[0]:
                raise _TooLarge()
            return _to_json(obj.tolist(), budget, depth + 1, active)
        if hasattr(obj, "item"):
            return _to_json(obj.item(), budget, depth + 1, active)
        raise _NotJson()
    if module.startswith("pandas"):
        if t.__name__ in ("NAType", "NaTType"):
            budget[0] -= 5
            return None
        if datetime is not None and isinstance(obj, datetime.datetime):
            return _to_json(obj.isoformat(), budget, depth, active)
        size = getattr(obj, "size", None)
        if isinstance(size, int) and size * 2 > budget[0]:
            raise _TooLarge()
        if hasattr(obj, "to_dict"):
            return _to_json(obj.to_dict(), budget, depth + 1, active)
        if hasattr(obj, "tolist"):
            return _to_json(obj.tolist(), budget, depth + 1, active)
        raise _NotJson()
    if datetime is not None and isinstance(obj, (datetime.date, datetime.time)):
        return _to_json(obj.isoformat(), budget, depth, active)
    if isinstance(obj, str):
        return _to_json("".join((obj,)), budget, depth, active)
    if isinstance(obj, int) and not isinstance(obj, bool):
        return _to_json(int(obj), budget, depth, active)
    if isinstance(obj, float):
        return _to_json(float(obj), budget, depth, active)
    ident = id(obj)
    if ident in active:
        raise _NotJson()  # a cycle
    if isinstance(obj, dict):
        budget[0] -= 2
        active.add(ident)
        out = {}
        for key, value in obj.items():
            key = _key(key)
            budget[0] -= len(key) + 4
            out[key] = _to_json(value, budget, depth + 1, active)
        active.discard(ident)
        return out
    if isinstance(obj, (set, frozenset)):
        try:
            items = sorted(obj)
        except Exception:
            items = list(obj)
    elif isinstance(obj, (list, tuple)) or type(obj).__name__ == "deque":
        items = obj
    else:
        raise _NotJson()
    budget[0] -= 2 + len(items)
    if budget[0] < 0:
        raise _TooLarge()
    active.add(ident)
    out = [_to_json(item, budget, depth + 1, active) for item in items]
    active.discard(ident)
    return out


def encode_value(value, limit):
    """(json-able value, truncated). Never raises."""
    try:
        obj = _to_json(value, [limit], 0, set())
        text = json_dumps(obj, allow_nan=False)
        if len(text) <= limit // 4 or len(text.encode("utf-8", "replace")) <= limit:
            return obj, False
        return bounded_repr(value, limit)[0], True
    except _TooLarge:
        return bounded_repr(value, limit)[0], True
    except BaseException:
        return bounded_repr(value, limit)
