"""Errors raised by cogscope's ui package.

UiError                 base: every message says what is wrong and what to do
├── UsageError          bad input from the command line or a form (CLI exit 2)
└── ModelError          a model id, API key or API base that cannot work
"""

from __future__ import annotations


class UiError(Exception):
    """Base class; str(error) is one line a user can act on."""


class UsageError(UiError):
    pass


class ModelError(UsageError):
    pass
