"""
loading.
"""

from __future__ import annotations

from ._preloader import Fetched as Fetched
from ._preloader import Preloader as Preloader

__all__ = [
    "Fetched",
    "Preloader",
]
