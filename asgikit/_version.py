"""The package's version, in a module of its own so that any module can read it.

``asgikit/__init__.py`` (the package's face) re-exports it; a piece that
needs it imports it from here, never from the face above it.  flit reads
it from this file too.
"""

__version__ = "0.1.0"
