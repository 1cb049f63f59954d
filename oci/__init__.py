"""A standard-library OCI registry client and the fill program, shared by the stack and `bundle/`.

Standard library only: the fill step ships this package to the machine that runs the fill and
runs `oci/fill.py` with that machine's system python3 (3.11 on Debian 12).
"""
