"""
The background path: the preloader's queue, single-flight loads, retries, cool-downs
and leases.
"""

from __future__ import annotations

from ._building import OFFLOAD_CHARS as OFFLOAD_CHARS
from ._flights import Fetched as Fetched
from ._preloader import Preloader as Preloader
from ._statistics import PreloaderStatistics as PreloaderStatistics

__all__ = [
    "OFFLOAD_CHARS",
    "Fetched",
    "Preloader",
    "PreloaderStatistics",
]
