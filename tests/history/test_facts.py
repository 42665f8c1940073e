"""
Fact extraction: names, times, dates, numbers, choices and the phrases they form.
"""

from __future__ import annotations

from preload.history import extract_facts


def test_facts_are_names_times_dates_numbers_and_choices() -> None:
    """
    Capitalized spans that start a sentence with a common word are not names.
    """
    expected = [
        ("leaving", "choice"),
        ("leaving for Sacramento on 9:45 am", "phrase"),
        ("Sacramento", "name"),
        ("9:45 am", "time"),
    ]
    assert expected == extract_facts("I am leaving for Sacramento on 9:45 am.")


def test_names_keep_their_initials_titles_and_joining_marks() -> None:
    """
    "Susan M. Greene" is one name; a title-case run mid-sentence is a name even when it
    starts with a common word; "+" joins a name; "to" also splits it into its places.
    """
    facts = extract_facts("Yes, I have Susan M. Greene, a Psychologist.")
    assert ("Susan M. Greene", "name") in facts
    facts = extract_facts("How about Just Kiss Her by Concorde? It is at Tarla Bar + Grill.")
    assert {("Just Kiss Her", "name"), ("Concorde", "name")} <= set(facts)
    assert ("Tarla Bar + Grill", "name") in facts
    facts = extract_facts("3 tickets on the bus from Los Angeles to Las Vegas")
    assert {("Los Angeles", "name"), ("Las Vegas", "name")} <= set(facts)


def test_lowercase_phrases_joined_by_small_words_are_facts() -> None:
    """
    Content words joined by "and", "of", "in the" form one phrase: lowercase places and
    requests survive whole, and quoted text is a name.
    """
    facts = {
        text for text, _ in extract_facts("I need an uber from craig and center to 5th and main")
    }
    assert {"craig and center", "5th and main"} <= facts
    facts = {text for text, _ in extract_facts("Yes, I definitely need two beds in the room")}
    assert "two beds in the room" in facts
    assert ("weekly scrum", "name") in extract_facts("The reason is 'weekly scrum'.")
