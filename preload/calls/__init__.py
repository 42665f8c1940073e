"""
Calls: tool calls with arguments as needs, their sources, and speculative calls run
before the agent asks for them.
"""

from __future__ import annotations

from ._call import CALL_PREFIX as CALL_PREFIX
from ._call import MAX_ARGS_CHARS as MAX_ARGS_CHARS
from ._call import MAX_CALLS_PER_TURN as MAX_CALLS_PER_TURN
from ._call import ToolCall as ToolCall
from ._call import as_text as as_text
from ._call import call_key as call_key
from ._call import canonical_args as canonical_args
from ._call import check_name as check_name
from ._contexts import CONTEXT_TYPES as CONTEXT_TYPES
from ._contexts import context_call_id as context_call_id
from ._contexts import context_parameters as context_parameters
from ._contexts import in_context as in_context
from ._contexts import split_arguments as split_arguments
from ._contexts import with_context as with_context
from ._fleet import FleetSlots as FleetSlots
from ._fleet import slot_name as slot_name
from ._limit import SourceLimit as SourceLimit
from ._limit import SourceLoad as SourceLoad
from ._limit import source_load as source_load
from ._rationing import CallRationing as CallRationing
from ._sources import MAX_BACKEND_CHARS as MAX_BACKEND_CHARS
from ._sources import CallSource as CallSource
from ._sources import Tool as Tool
from ._sources import ToolSet as ToolSet
from ._sources import backend_of as backend_of
from ._speculation import CallAdapter as CallAdapter
from ._speculation import CallBook as CallBook
from ._speculation import CallStatistics as CallStatistics
from ._speculation import Moment as Moment
from ._speculation import SpeculatedCall as SpeculatedCall
from ._speculation import SpeculationLedger as SpeculationLedger
from ._wrap import calling as calling
from ._wrap import current_session as current_session
from ._wrap import in_session as in_session
from ._wrap import take_call_id as take_call_id
from ._wrap import through_engine as through_engine

__all__ = [
    "CALL_PREFIX",
    "CONTEXT_TYPES",
    "MAX_ARGS_CHARS",
    "MAX_BACKEND_CHARS",
    "MAX_CALLS_PER_TURN",
    "CallAdapter",
    "CallBook",
    "CallRationing",
    "CallSource",
    "CallStatistics",
    "FleetSlots",
    "Moment",
    "SourceLimit",
    "SourceLoad",
    "SpeculatedCall",
    "SpeculationLedger",
    "Tool",
    "ToolCall",
    "ToolSet",
    "as_text",
    "backend_of",
    "call_key",
    "calling",
    "canonical_args",
    "check_name",
    "context_call_id",
    "context_parameters",
    "current_session",
    "in_context",
    "in_session",
    "slot_name",
    "source_load",
    "split_arguments",
    "take_call_id",
    "through_engine",
    "with_context",
]
