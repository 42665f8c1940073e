"""
compression.
"""

from __future__ import annotations

from ._compressor import Compressor as Compressor
from ._compressor import MultiLevelCompressor as MultiLevelCompressor
from ._compressor import Summarizer as Summarizer
from ._compressor import SummarizingCompressor as SummarizingCompressor
from ._compressor import TruncatingCompressor as TruncatingCompressor
from ._levels import Level as Level
from ._levels import Representation as Representation
from ._truncation import truncate_text as truncate_text
from ._units import coverage as coverage
from ._units import key_terms as key_terms

__all__ = [
    "Compressor",
    "Level",
    "MultiLevelCompressor",
    "Representation",
    "Summarizer",
    "SummarizingCompressor",
    "TruncatingCompressor",
    "coverage",
    "key_terms",
    "truncate_text",
]
