"""The errors the simulator answers, in BILLmanager's ``doc.error`` shape."""

from resellctl.bmdoc import named, scalar


class ApiError(Exception):
    """An error answer: ``$type``, ``$object``, a message and named params (docs/protocol.md)."""

    def __init__(self, type, object="", msg="", **params):
        super().__init__(msg or type)
        self.type = type
        self.object = object
        self.msg = msg or type
        self.params = params

    def as_doc(self):
        """The error as the content of ``doc``."""
        return {"error": {"$type": self.type, "$object": self.object, "msg": scalar(self.msg),
                          "param": named(self.params)}}


def missed(name):
    """A required parameter is missing."""
    return ApiError("missed", name, f"The parameter '{name}' is required")


def bad_value(name, msg):
    """A parameter has a bad value."""
    return ApiError("value", name, msg)
