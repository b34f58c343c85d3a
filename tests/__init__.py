"""kgpu test suite (a package so the tests can share :mod:`tests._helpers`)."""
