"""Shared test configuration: sciml is imported first so that its x64 policy is in force."""

import sciml  # noqa: F401
