"""
compression.
"""

from __future__ import annotations

from ._compressor import Compressor as Compressor
from ._compressor import Level as Level
from ._compressor import MultiLevelCompressor as MultiLevelCompressor
from ._compressor import Representation as Representation
from ._compressor import Summarizer as Summarizer
from ._compressor import TruncatingCompressor as TruncatingCompressor
from ._compressor import coverage as coverage
from ._compressor import key_terms as key_terms
from ._compressor import truncate_text as truncate_text

__all__ = [
    "Compressor",
    "Level",
    "MultiLevelCompressor",
    "Representation",
    "Summarizer",
    "TruncatingCompressor",
    "coverage",
    "key_terms",
    "truncate_text",
]
