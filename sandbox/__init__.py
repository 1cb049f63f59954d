"""Throwaway Debian hosts on this machine's loopback and the upstream fixture that plays the
internet (public registries, a signed Debian archive, an RPM repository): what `make sandbox` and
the end-to-end tests run against."""
