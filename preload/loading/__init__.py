"""
The background path: the preloader's queue, single-flight loads, retries, cool-downs
and leases.
"""

from __future__ import annotations

from ._flights import Fetched as Fetched
from ._preloader import Preloader as Preloader
from ._statistics import PreloaderStatistics as PreloaderStatistics

__all__ = [
    "Fetched",
    "Preloader",
    "PreloaderStatistics",
]
