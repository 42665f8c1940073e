"""
Structure: database rows and JSON records become tables, every value kept.
"""

from __future__ import annotations

import json

from preload import TiktokenCounter
from preload.compression import coverage, key_terms
from preload.compression._structural import structural

COUNTER = TiktokenCounter()

ROWS = "Records (4 of 9):\n" + "\n".join(
    f"{i}. hotel_name=Heathrow International Airport Hotel; city=London; stars={i}"
    for i in range(1, 5)
)


def test_database_rows_become_a_table_with_a_legend() -> None:
    """
    ``1. a=x; b=y`` rows become one header and value rows; a long value repeated in
    every row is abbreviated with a legend, and every value survives.
    """
    text, found = structural(ROWS, COUNTER)
    expected = [
        "Records (4 of 9):",
        "legend: #1=Heathrow International Airport Hotel",
        "hotel_name | city | stars",
        "#1 | London | 1",
    ]
    assert found
    assert expected == text.splitlines()[:4]
    assert 1.0 == coverage(key_terms("Heathrow International Airport London 1 2 3 4"), text)


def test_json_records_become_a_table() -> None:
    """
    A JSON list of records is rewritten as a table, not compressed as prose.
    """
    data = {"results": [{"name": "Supa Modo", "year": 2018}, {"name": "Rafiki", "year": 2018}]}
    text, found = structural(json.dumps(data, indent=2), COUNTER)
    assert found
    assert "results:\nname | year\nSupa Modo | 2018\nRafiki | 2018" == text


def test_json_nested_past_reading_stays_text() -> None:
    """
    A text that opens as JSON but nests deeper than the decoder reads (an item a
    source returned) is compressed as text, not a RecursionError on the way.
    """
    deep = "[" * 5_000 + "]" * 5_000
    text, found = structural(deep, COUNTER)
    assert (deep, False) == (text, found)
