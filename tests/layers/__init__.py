"""Tests of `sciml.layers`: a package, so its test modules cannot clash by name with other folders."""
