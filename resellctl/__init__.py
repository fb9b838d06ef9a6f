"""resellctl: resell services of an upstream selling BILLmanager."""

__version__ = "0.1.0"
