"""Builds nlu/project/data/corpus_*.yml from the permissively licensed corpora.

Why a script: the training data drawn from public corpora must be reproducible (same seed, same
mapping, same anonymisation) and auditable, while the Rasa project itself must train without the
corpora present, so the output YAML is committed.  Run from the repository root::

    python3 nlu/sources/build_training_data.py [--corpora ../shared/corpora]

Sources (see nlu/DATA.md for licences and attribution):
* Banking77 (CC BY 4.0): online-banking support queries -> support intents.
* CLINC150 (CC BY 3.0): small talk -> greet/thanks/goodbye/chitchat, out-of-scope and
  personal-assistant requests -> out_of_scope, a few bookings/orders -> purchase/order_problem.
* IBM Twitter customer care (Apache-2.0): customers' opening tweets -> support intents by
  keyword rules, anonymised (handles, links, e-mail addresses, phone numbers replaced).

Never reads /work/shared/eval: that file is for measurement only.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import sys
from collections import defaultdict
from pathlib import Path

SEED = 20261125
REPO = Path(__file__).resolve().parents[2]
# ../shared/corpora from the repository root (a git worktree sits one level deeper).
DEFAULT_CORPORA = next(
    (p / "shared" / "corpora" for p in (REPO.parent, REPO.parent.parent) if (p / "shared" / "corpora").is_dir()),
    REPO.parent / "shared" / "corpora",
)
OUT_DIR = REPO / "nlu" / "project" / "data"

# The anonymiser is shared with `frontdesk nlu export-corrections` (agents' corrections become training data too).
sys.path.insert(0, str(REPO))
from nlu.anonymise import anonymise_tweet  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Banking77: fine intent -> our intent.  Unlisted intents are left out (they are bank-specific
# questions that would not teach a brand's support bot anything new).
BANKING77: dict[str, str] = {
    "card_arrival": "order_problem",
    "card_delivery_estimate": "order_problem",
    "wrong_amount_of_cash_received": "billing_refund",
    "request_refund": "billing_refund",
    "Refund_not_showing_up": "billing_refund",
    "transaction_charged_twice": "billing_refund",
    "extra_charge_on_statement": "billing_refund",
    "card_payment_fee_charged": "billing_refund",
    "direct_debit_payment_not_recognised": "billing_refund",
    "card_payment_not_recognised": "billing_refund",
    "passcode_forgotten": "account_login",
    "pin_blocked": "account_login",
    "unable_to_verify_identity": "account_login",
    "compromised_card": "account_login",
    "terminate_account": "account_login",
    "lost_or_stolen_phone": "account_login",
    "card_not_working": "product_issue",
    "contactless_not_working": "product_issue",
    "virtual_card_not_working": "product_issue",
    "declined_card_payment": "product_issue",
    "top_up_failed": "product_issue",
    "card_swallowed": "product_issue",
    "activate_my_card": "how_to",
    "change_pin": "how_to",
    "apple_pay_or_google_pay": "how_to",
    "edit_personal_details": "how_to",
    "automatic_top_up": "how_to",
    "get_physical_card": "how_to",
}
BANKING77_PER_INTENT = {"order_problem": 40, "billing_refund": 70, "account_login": 60,
                        "product_issue": 60, "how_to": 70}

# CLINC150: intent -> our intent (None = not used).  Everything from the personal-assistant
# domains plus the official out-of-scope queries feeds out_of_scope.
CLINC_MAP: dict[str, str] = {
    "greeting": "greet",
    "thank_you": "thanks",
    "goodbye": "goodbye",
    "who_made_you": "chitchat",
    "meaning_of_life": "chitchat",
    "do_you_have_pets": "chitchat",
    "what_are_your_hobbies": "chitchat",
    "fun_fact": "chitchat",
    "what_is_your_name": "chitchat",
    "where_are_you_from": "chitchat",
    "tell_joke": "chitchat",
    "how_old_are_you": "chitchat",
    "order_status": "order_problem",
    "lost_luggage": "complaint",
    "report_fraud": "account_login",
    "account_blocked": "account_login",
    "book_flight": "purchase",
    "book_hotel": "purchase",
    "car_rental": "purchase",
    "order": "purchase",
}
CLINC_OOS_DOMAINS = ("utility", "kitchen_and_dining", "auto_and_commute", "work", "travel", "home", "meta")
CLINC_OOS_SKIP = {"order", "order_status", "book_flight", "book_hotel", "car_rental", "lost_luggage",
                  "make_call", "yes", "no", "maybe", "cancel", "repeat", "confirm_reservation",
                  "cancel_reservation", "restaurant_reservation", "accept_reservations"}
CLINC_PER_INTENT = {"greet": 60, "thanks": 60, "goodbye": 50, "chitchat": 60, "order_problem": 25,
                    "complaint": 20, "account_login": 25, "purchase": 50}
CLINC_OOS_TOTAL = 140

# IBM opening tweets: first matching rule wins; unmatched tweets are general product problems.
IBM_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("ask_human", re.compile(r"\b(speak|talk|chat) (to|with) (a |an |someone|somebody|a real|real|live|human|"
                             r"person|agent|representative|supervisor|manager)|\b(please|pls|plz|someone|somebody) (please )?call me\b|"
                             r"phone number (to|for) (call|reach|contact)|\bcustomer service (number|phone)\b"
                             r"|\bhuman being\b|\breal person\b|\blive (agent|person|chat)\b", re.I)),
    ("outage", re.compile(r"\b(down|outage|servers?|not loading|won'?t load|can'?t connect|"
                          r"connection (issue|problem|error)|offline|is it just me)\b", re.I)),
    ("account_login", re.compile(r"\b(log ?in|sign ?in|password|hacked|locked|suspended|banned|"
                                 r"verification|2fa|two.step|recover|recovery|account (was|got|has been)|"
                                 r"disabled|terminated)\b", re.I)),
    ("billing_refund", re.compile(r"\b(refunds?|refunded|charged?|charges|billing|bill|billed|"
                                  r"subscription|payment|paid|money back|cancel my)\b", re.I)),
    ("order_problem", re.compile(r"\b(orders?|ordered|deliver(y|ed)?|shipping|shipped|package|parcel|"
                                 r"tracking|arrived?|purchased?|bought|pre-?order(ed)?|never received|"
                                 r"haven'?t received)\b", re.I)),
    ("how_to", re.compile(r"^(how|is there a way|can i|can you|is it possible)\b|\bhow (do|can|to)\b", re.I)),
]
IBM_PER_INTENT = {"ask_human": 30, "outage": 150, "account_login": 150, "billing_refund": 150,
                  "order_problem": 150, "how_to": 150, "product_issue": 250}

INTENT_FILES = {
    "banking77": "corpus_banking77.yml",
    "clinc150": "corpus_clinc150.yml",
    "ibm": "corpus_ibm_twitter.yml",
}


# ---------------------------------------------------------------------------------------------
def _sample(rng: random.Random, items: list[str], n: int) -> list[str]:
    items = sorted(set(items))
    rng.shuffle(items)
    return items[:n]


def _clean(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text.replace("[", "(").replace("]", ")")  # Rasa reads [x](entity) as an annotation


def load_banking77(corpora: Path, rng: random.Random) -> dict[str, list[str]]:
    by_intent: dict[str, list[str]] = defaultdict(list)
    with (corpora / "banking77" / "train.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            ours = BANKING77.get(row["category"])
            if ours:
                by_intent[ours].append(_clean(row["text"]))
    return {k: _sample(rng, v, BANKING77_PER_INTENT[k]) for k, v in sorted(by_intent.items())}


def load_clinc150(corpora: Path, rng: random.Random) -> dict[str, list[str]]:
    data = json.loads((corpora / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    domains = json.loads((corpora / "clinc150" / "domains.json").read_text(encoding="utf-8"))
    assistant = {i for d in CLINC_OOS_DOMAINS for i in domains[d]} - CLINC_OOS_SKIP
    by_intent: dict[str, list[str]] = defaultdict(list)
    oos_assistant: list[str] = []
    oos_official: list[str] = []
    for text, intent in data["train"]:
        if intent in CLINC_MAP:
            by_intent[CLINC_MAP[intent]].append(_clean(text))
        elif intent in assistant:
            oos_assistant.append(_clean(text))
    for text, _ in data["oos_train"]:
        oos_official.append(_clean(text))
    out = {k: _sample(rng, v, CLINC_PER_INTENT[k]) for k, v in sorted(by_intent.items())}
    out["out_of_scope"] = _sample(rng, oos_official, CLINC_OOS_TOTAL // 2) + _sample(
        rng, oos_assistant, CLINC_OOS_TOTAL // 2
    )
    return out


def load_ibm(corpora: Path, rng: random.Random) -> dict[str, list[str]]:
    by_intent: dict[str, list[str]] = defaultdict(list)
    for name in ("ibm_twitter_cdp_dev.json", "ibm_twitter_cdp_test.json"):
        for conv in json.loads((corpora / "ibm_twitter_customer_care" / name).read_text(encoding="utf-8")):
            raw = conv["dialogContent"][0]["message"]
            text = _clean(anonymise_tweet(raw))
            if len(text) < 12 or len(text) > 280:
                continue
            intent = next((i for i, rule in IBM_RULES if rule.search(text)), "product_issue")
            by_intent[intent].append(text)
    return {k: _sample(rng, v, IBM_PER_INTENT[k]) for k, v in sorted(by_intent.items())}


def write_nlu_yaml(path: Path, source_note: str, by_intent: dict[str, list[str]]) -> None:
    lines = ['version: "3.1"', f"# Generated by nlu/sources/build_training_data.py from {source_note}.",
             "# Do not edit by hand: change the script and re-run it.", "nlu:"]
    for intent in sorted(by_intent):
        lines.append(f"- intent: {intent}")
        lines.append("  examples: |")
        lines.extend(f"    - {text}" for text in by_intent[intent])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    args = parser.parse_args()
    corpora: Path = args.corpora
    if not (corpora / "banking77").is_dir():
        raise SystemExit(f"{corpora}: corpora not found; pass --corpora PATH (the shared/corpora folder)")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    built = {
        "banking77": ("Banking77 (CC BY 4.0, PolyAI)", load_banking77(corpora, random.Random(SEED))),
        "clinc150": ("CLINC150 (CC BY 3.0, Clinc)", load_clinc150(corpora, random.Random(SEED + 1))),
        "ibm": ("IBM Twitter customer care (Apache-2.0), anonymised", load_ibm(corpora, random.Random(SEED + 2))),
    }
    seen: set[str] = set()
    for key, (note, by_intent) in built.items():
        for intent in by_intent:  # the same text under two intents would confuse the classifier
            by_intent[intent] = [t for t in by_intent[intent] if t.lower() not in seen]
            seen.update(t.lower() for t in by_intent[intent])
        write_nlu_yaml(OUT_DIR / INTENT_FILES[key], note, by_intent)
        counts = ", ".join(f"{i}={len(v)}" for i, v in sorted(by_intent.items()))
        print(f"{INTENT_FILES[key]}: {counts}")


if __name__ == "__main__":
    main()
