"""
The words of a conversation: the word pattern, the filler words that carry no fact,
and the normalized and compact forms of a text.
"""

from __future__ import annotations

import re

__all__ = ["ASKING", "FILLER", "NOT_NAMES", "WORD", "compact", "cut_at_space", "norm"]

#: A word or a number.
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*|\d[\d:.,]*")


def _words(text: str) -> list[str]:
    return text.split()


#: Words that start a question.
ASKING = frozenset(
    _words(
        """what which who whom whose when where why how is are am was were do does did can
    could will would shall should may might have has had isn't aren't don't doesn't didn't
    can't won't"""
    )
)

#: Words that carry no fact: function words and the small talk of assistants.
FILLER = frozenset(
    _words(
        """a about above after again against all also am an and any are aren't as at be because
    been before being below between both but by can can't cannot could couldn't did didn't do
    does doesn't doing don't down during each few for from further had hadn't has hasn't have
    haven't having he he'd he'll he's her here here's hers herself him himself his how how's i
    i'd i'll i'm i've if in into is isn't it it's its itself let's me more most mustn't my myself
    no nor not of off on once only or other ought our ours ourselves out over own same shan't she
    she'd she'll she's should shouldn't so some such than that that's the their theirs them
    themselves then there there's these they they'd they'll they're they've this those through to
    too under until up very was wasn't we we'd we'll we're we've were weren't what what's when
    when's where where's which while who who's whom why why's will with won't would wouldn't you
    you'd you'll you're you've your yours yourself yourselves yes yeah yep ok okay sure thanks
    thank please great good nice perfect fine cool awesome alright right hello hi hey bye goodbye
    well just really also like want wanna need would could help find search look looking get got
    go going know let tell give show see sounds sound something anything else thing things one
    much many lot lots way kind sort maybe possible able mind wish interested prefer now then
    there can could shall may might must will listen watch see visit stay eat travel fly say
    said think sounds told ask asked try trying available there's information details
    confirm confirmed following correct successfully found option options assist ready done
    lets let's moment shall works work actually make made instead rather"""
    )
)

#: Capitalized words that start sentences without naming anything.
NOT_NAMES = FILLER | frozenset(
    _words(
        """search find book reserve get show tell give look need want like help make check play
    buy rent call send add set schedule thanks thank great perfect okay sure yes yeah no nope
    hello hi hey please awesome cool good nice fine alright correct right exactly also actually
    well that what which when where how could would can will do does is are let it there this
    i'm i'd i'll i've it's that's what's how's let's sounds sound am was any anything nothing
    nothing, is are you we they he she my your our their its an a the and but or so if
    unfortunately sorry ok okay enjoy have has had did does done may might shall should"""
    )
)


def norm(text: str) -> str:
    """
    ``text`` as lower-cased words separated by single spaces: the key of a fact.
    """
    return " ".join(w.lower() for w in WORD.findall(text))


def compact(text: str) -> str:
    """
    ``text`` without filler words and most punctuation: a telegraphic form.
    """
    words = [w for w in WORD.findall(text) if w.lower() not in FILLER]
    return " ".join(words)


def cut_at_space(text: str, limit: int) -> str:
    """
    ``text`` within ``limit`` characters: cut at its last space in the second half
    of the limit where there is one, and marked " …".
    """
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ", limit // 2)
    return (cut[:space] if space > 0 else cut) + " …"
