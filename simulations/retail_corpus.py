"""
A generated retail help desk in the session-log format, for what the shipped corpora
hardly have: calls whose arguments are codes new in every session (user ids, order
numbers, e-mail addresses, zip codes, parcel tracking numbers), as an agent's tools
take them, and calls whose arguments only an earlier call's result gives. A session
signs the user in (by user id; or by e-mail, or by name and zip code, whose lookup
returns the user id, and then opens the account), then asks about one to three orders
(by number, or "my latest order", which the account's result lists first; the status,
a return, or the parcel, whose tracking number the order's result gives), and says
goodbye. Every call records its result (``result``), as an agent's log does;
``--no-results`` leaves them out, as the shipped corpora do (about a third of the
read-only calls then have an argument no text says). With ``--questions``, half the
sessions also ask a policy question before goodbye, which the agent hands to its
help-center search as the user wrote it (``search_help_center``, read-only): a query
argument new in almost every session. With ``--chained``, a turn makes two calls where
an agent's loop would (as tau-bench's agents do): a lookup by e-mail or name opens the
account with the user id it returned in the same turn, and two in five orders asked
about by number are tracked at once, by the parcel number the order's result gives.

``python -m simulations.retail_corpus OUT`` writes ``OUT/retail/`` with
``sessions-train.jsonl`` (1,500 sessions), ``sessions-dev.jsonl`` (400) and
``knowledge.jsonl``, as the shared corpora's folders are laid out (``--no-states``:
turns without states). Then ``python -m simulations.call_miss_breakdown --data OUT
--corpus retail`` or ``preload simulate --sessions OUT/retail/sessions-dev.jsonl
--train OUT/retail/sessions-train.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import random
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "session", "write"]

_FIRST = "mia noah emma liam olivia ava lucas ethan yusuf sofia amelia omar chen aisha ivan"
_LAST = "garcia smith kim nguyen patel rossi muller silva brown khan lopez wang ito"
_ITEMS = ("water bottle", "desk lamp", "hiking boots", "t-shirt", "laptop", "backpack")
_SPLITS = (("train", 1500), ("dev", 400))
_QUESTIONS = (
    "How long does a refund for the {item} take?",
    "Can I still return a {item} after {days} days?",
    "do you ship the {item} to {country}",
    "What is the warranty on the {item} I bought in {month}?",
    "Is there a restocking fee if I send back the {item}?",
)
_COUNTRIES = ("Canada", "Mexico", "Germany", "Japan", "Brazil", "Kenya", "India", "Spain")
_MONTHS = ("January", "March", "May", "July", "September", "November")


class _Session:
    """
    One session's turns as they are written: request, state, reply and calls (each
    ``(name, args, read_only, result)``).
    """

    def __init__(self, rng: random.Random, *, states: bool, results: bool) -> None:
        self.rng = rng
        self.states = states
        self.results = results
        self.turns: list[dict[str, Any]] = []
        self.t = 0.0

    def turn(
        self, text: str, system: str, state: str, *calls: tuple[str, dict[str, str], bool, str]
    ) -> None:
        turn: dict[str, Any] = {"t": round(self.t, 1), "text": text, "system": system}
        if self.states:
            turn["state"] = state
        if calls:
            turn["tool_calls"] = [
                {"name": name, "args": args, "read_only": read_only}
                | ({"result": result} if self.results else {})
                for name, args, read_only, result in calls
            ]
        self.turns.append(turn)
        self.t += self.rng.uniform(10.0, 40.0)


def _code(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def session(
    rng: random.Random,
    session_id: str,
    *,
    states: bool = True,
    results: bool = True,
    questions: bool = False,
    chained: bool = False,
) -> dict[str, Any]:
    """
    One generated session (see the module's docstring).
    """
    s = _Session(rng, states=states, results=results)
    first, last = rng.choice(_FIRST.split()), rng.choice(_LAST.split())
    user = f"{first}_{last}_{rng.randint(1000, 9999)}"
    orders = ["#W" + _code(rng, string.digits, 7) for _ in range(rng.randint(1, 4))]
    account = json.dumps({"user_id": user, "name": f"{first} {last}".title(), "orders": orders})
    get_user = ("get_user_details", {"user_id": user}, True, account)
    how = rng.random()
    if how < 0.5:
        s.turn(
            rng.choice(
                [
                    f"Hi, my user id is {user}.",
                    f"hello, I need help with an order. user id {user}",
                    f"My user ID: {user}, please help",
                    f"Hey there. I'm {first.title()}, my id is {user}",
                ]
            ),
            f"Thanks. I found your account, {first.title()}. What can I do for you?",
            "auth",
            get_user,
        )
    else:
        if how < 0.8:
            domain = rng.choice(["example.com", "gmail.com", "mail.net"])
            email = f"{first}.{last}{rng.randint(1, 99)}@{domain}"
            text = rng.choice(
                [
                    f"Hi, I can't remember my id but my email is {email}",
                    f"my email address is {email}",
                    f"You can find me by email: {email}.",
                ]
            )
            lookup = ("find_user_id_by_email", {"email": email}, True, user)
        else:
            zip_code = str(rng.randint(10000, 99999))
            name = f"{first.title()} {last.title()}"
            text = rng.choice(
                [f"I'm {name}, zip code {zip_code}", f"My name is {name} and my zip is {zip_code}."]
            )
            args = {"first_name": first.title(), "last_name": last.title(), "zip": zip_code}
            lookup = ("find_user_id_by_name_zip", args, True, user)
        if chained:  # the agent opens the account with the id the lookup returned
            s.turn(
                text, f"Thanks, I found your account, {first.title()}.", "auth", lookup, get_user
            )
        else:
            s.turn(text, "Thanks, I found your user id.", "auth", lookup)
            s.turn(
                "Great, can you check my account?", f"Sure, {first.title()}.", "account", get_user
            )
    for _ in range(rng.randint(1, 3)):
        said = rng.random() < 0.6
        order = "#W" + _code(rng, string.digits, 7) if said else orders[0]
        parcel = _code(rng, string.ascii_uppercase + string.digits, 12)
        details = json.dumps({"order_id": order, "status": "shipped", "tracking_id": parcel})
        get_order = ("get_order_details", {"order_id": order}, True, details)
        kind = rng.random()
        if chained and said and rng.random() < 0.4:  # the parcel the order's result names
            track = ("track_package", {"tracking_id": parcel}, True, '{"where": "in transit"}')
            s.turn(
                rng.choice(
                    [f"Can you track order {order}?", f"where is my package from order {order}"]
                ),
                f"Order {order} is in transit.",
                "track",
                get_order,
                track,
            )
            continue
        if not said:
            s.turn(
                rng.choice(["Can you check my latest order?", "what about my most recent order"]),
                f"Your latest order {order} has shipped.",
                "order",
                get_order,
            )
        elif kind < 0.6:
            s.turn(
                rng.choice(
                    [
                        f"What's the status of order {order}?",
                        f"can you check order {order} for me",
                        f"I'd like to know about my order {order}.",
                        f"Order number {order}, where is it?",
                    ]
                ),
                f"Order {order} has been shipped. Anything else?",
                "order",
                get_order,
            )
        else:
            item = rng.choice(_ITEMS)
            s.turn(
                f"I want to return the {item} from order {order}",
                "Let me look at that order.",
                "order",
                get_order,
            )
            s.turn(
                "Yes please go ahead with the return.",
                "The return is on its way.",
                "return",
                ("return_items", {"order_id": order, "item": item}, False, '{"ok": true}'),
            )
            continue
        if rng.random() < 0.4:
            s.turn(
                rng.choice(["Where is the package now?", "can you track it?"]),
                "It is in transit.",
                "track",
                ("track_package", {"tracking_id": parcel}, True, '{"where": "in transit"}'),
            )
    if questions and rng.random() < 0.5:
        question = rng.choice(_QUESTIONS).format(
            item=rng.choice(_ITEMS),
            days=rng.randint(20, 90),
            country=rng.choice(_COUNTRIES),
            month=rng.choice(_MONTHS),
        )
        s.turn(
            question,
            "Here is what our help center says.",
            "question",
            ("search_help_center", {"query": question}, True, '{"articles": 3}'),
        )
    s.turn("Thanks, bye!", "Goodbye!", "bye")
    return {"session_id": session_id, "turns": s.turns}


def write(
    out: Path,
    *,
    seed: int = 0,
    states: bool = True,
    results: bool = True,
    questions: bool = False,
    chained: bool = False,
) -> Path:
    """
    Write the corpus's folder ``out/retail`` and return it.
    """
    folder = out / "retail"
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for split, n in _SPLITS:
        with open(folder / f"sessions-{split}.jsonl", "w", encoding="utf-8") as fh:
            for i in range(n):
                line = session(
                    rng,
                    f"retail-{split}-{i}",
                    states=states,
                    results=results,
                    questions=questions,
                    chained=chained,
                )
                fh.write(json.dumps(line) + "\n")
    policy = {"key": "doc:returns", "kind": "doc", "text": "Items may be returned in 30 days."}
    (folder / "knowledge.jsonl").write_text(json.dumps(policy) + "\n", encoding="utf-8")
    return folder


def main(argv: Sequence[str] | None = None) -> None:
    """
    Parse the arguments and write the corpus.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("out", type=Path, help="the folder to write retail/ in")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-states", action="store_true", help="turns without states")
    parser.add_argument("--no-results", action="store_true", help="calls without results")
    parser.add_argument(
        "--questions", action="store_true", help="policy questions searched for as written"
    )
    parser.add_argument(
        "--chained",
        action="store_true",
        help="turns whose second call takes what the first returned, as an agent's loop makes",
    )
    options = parser.parse_args(argv)
    folder = write(
        options.out,
        seed=options.seed,
        states=not options.no_states,
        results=not options.no_results,
        questions=options.questions,
        chained=options.chained,
    )
    print(f"wrote a generated retail help desk to {folder}")


if __name__ == "__main__":
    main()
