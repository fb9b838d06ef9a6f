"""BILLmanager's JSON document shapes (``out=json``), shared by the client and the simulator.

A scalar is ``{"$": "value"}`` (always a string), an attribute is a ``"$name"`` key beside it,
a list is an array of objects (a single element may come as a bare object), and named values
are ``[{"$name": "ip", "$": "192.0.2.10"}, ...]``.
"""


def scalar(value):
    """Wrap one value as BILLmanager does."""
    return {"$": str(value)}


def named(mapping):
    """``{"ip": "192.0.2.10"}`` as ``[{"$name": "ip", "$": "192.0.2.10"}]``."""
    return [{"$name": str(k), "$": str(v)} for k, v in mapping.items()]


def text(node, default=None):
    """The string inside a scalar node; ``default`` when it is absent.

    Raises ValueError for a node of another shape, so a malformed document is noticed where it
    is read rather than stored as garbage.
    """
    if node is None:
        return default
    if isinstance(node, dict):
        if "$" not in node:
            raise ValueError(f"expected a scalar, got an object with keys {sorted(node)[:5]}")
        node = node["$"]
    if isinstance(node, (str, int, float)) and not isinstance(node, bool):
        return str(node)
    raise ValueError(f"expected a scalar, got {type(node).__name__}")


def as_list(node):
    """A list node as a Python list: absent is empty, a lone object is a list of one."""
    if node is None:
        return []
    if isinstance(node, list):
        return node
    if isinstance(node, dict):
        return [node]
    raise ValueError(f"expected a list, got {type(node).__name__}")


def named_values(node):
    """``[{"$name": "ip", "$": "192.0.2.10"}]`` as ``{"ip": "192.0.2.10"}``."""
    result = {}
    for elem in as_list(node):
        if not isinstance(elem, dict) or not isinstance(elem.get("$name"), str):
            raise ValueError("expected a list of named values")
        result[elem["$name"]] = text(elem, "")
    return result


def nests_within(node, depth):
    """Whether ``node`` nests at most ``depth`` objects and arrays deep.

    Level by level, without recursion: an upstream's document may be nested too deep for any
    recursive walk (json.dumps) to reach its bottom within Python's recursion limit.
    """
    level = [node]
    for _ in range(depth + 1):
        level = [item for item in level if isinstance(item, (dict, list))]
        if not level:
            return True
        level = [child for item in level
                 for child in (item.values() if isinstance(item, dict) else item)]
    return False
