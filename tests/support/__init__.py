"""Helpers shared by the tests: real servers on loopback and the fixtures built on them."""
