"""The injection heuristics for personas, fake role markers and disguised spellings.

``PERSONAS`` and ``ROLE_MARKERS`` run over the normalised views like ``signals``;
``COMPACT_SIGNALS`` over the letters-only view; ``RAW_SIGNALS`` over the original text.
Tuned on the S-Labs training split only.
"""

from __future__ import annotations

import re

from gateway.checks.injection.vocabulary import (
    AI,
    DETERMINER,
    FREE,
    GAP,
    JAILBREAK_MODE,
    LIMIT_QUALIFIER,
    LIMITS,
    MODE,
    PERSONA,
    PRODUCT_MODE,
    RULES,
    YOU,
    YOUR,
    Signal,
    any_of,
    signal,
)

_ = GAP

PERSONAS: tuple[Signal, ...] = (
    signal(
        "persona",
        0.9,
        rf"\b{YOU}{_}(?:are|r|re|'re){_}now{_}(?:(?:a|an|the|in|my|called){_})?"
        rf"(?:{PERSONA}|dan|{MODE}{_}mode|free|no longer|not|without|named)",
    ),
    signal("persona", 0.6, rf"\b{YOU}(?:{_}are|'re|{_}r){_}now{_}(?:a|an|in|called|named)\b"),
    signal("persona", 0.9, r"\bdo[\W_]{1,3}anything[\W_]{1,3}now\b|\bdan[\W_]{1,3}mode\b"),
    signal("persona", 0.9, rf"\b{PERSONA}{_}(?:{AI}|{any_of('ai', 'gpt')}{_}{AI})\b"),
    signal(
        "persona",
        0.85,
        rf"\b(?:act|acting|be|become|go|stay|respond|answer|reply|behave|help|assist|operate|"
        rf"function|work)(?:{_}(?:me|now|only|as|like))?{_}(?:completely{_}|fully{_}|totally{_}|"
        rf"an?{_})?(?:unfiltered|unrestricted|uncensored|jailbroken|unaligned|unbound|unhinged|"
        rf"dan)\b",
    ),
    signal("jailbreak-mode", 0.5, rf"\b{JAILBREAK_MODE}{_}mode\b"),
    signal("jailbreak-mode", 0.3, rf"\b{PRODUCT_MODE}{_}mode\b"),
    signal(
        "jailbreak-mode",
        0.9,
        rf"\b(?:(?:enter|enable|activate|engage|switch to|turn on|initiate|in|into){_}"
        rf"(?:{DETERMINER}{_})?{JAILBREAK_MODE}{_}mode|{JAILBREAK_MODE}{_}mode{_}(?:is{_})?"
        rf"(?:on|enabled|activated|engaged|initiated|unlocked))\b",
    ),
    # "Enable developer mode" is a phone setting; addressed to the model it is an attack.
    signal(
        "jailbreak-mode",
        0.8,
        rf"\b(?:{YOU}{_}(?:are|r|'re|re){_}(?:now{_})?in{_}|(?:enter|activate|engage|switch to|"
        rf"initiate){_}(?:{DETERMINER}{_})?){PRODUCT_MODE}{_}mode\b(?!{_}on{_}(?:my|an?|the)\b)"
        rf"|\b{PRODUCT_MODE}{_}mode{_}(?:is{_})?(?:now{_})?(?:on(?![ \t]+[a-z])|enabled|"
        rf"activated|engaged|initiated|unlocked)\b",
    ),
    signal(
        "no-restrictions",
        0.9,
        rf"\b(?:act|behave|respond|answer|reply|function|operate|work|pretend|roleplay|"
        rf"role-play|play|become|be|imagine|continue|proceed|speak|talk|write|help|assist|"
        rf"generate|comply|start over|start)(?:ing|s)?{_}(?:[\w']+{_}){{0,10}}?{FREE}{_}"
        rf"(?:(?:any|all|{YOUR}|the|those|these|its|usual|normal|typical|ethical|moral|safety|"
        rf"content|artificial|prior|previous|ai){_}){{0,2}}{LIMITS}\b",
    ),
    signal(
        "no-restrictions",
        0.9,
        rf"\b(?:pretend|imagine|suppose|assume|act as if|act like|as if|as though|what if|"
        rf"let'?s say|if|like|where){_}(?:[\w']+{_}){{0,4}}?{YOU}(?:{_}(?:have|had|are|were|"
        rf"did|do|'re|'ve|didn'?t have|did not have|don'?t have|do not have)(?:{_}not)?)?"
        rf"{_}(?:no|zero|never (?:been )?(?:given|had)(?: any)?|without(?: any)?|free of|any|"
        rf"not bound by|never){_}(?:{LIMIT_QUALIFIER}{_})?{LIMITS}\b",
    ),
    signal(
        "no-restrictions",
        0.85,
        rf"\b(?:pretend|imagine|suppose|assume|as if|as though|what if|let'?s say|if|like|"
        rf"where){_}(?:[\w']+{_}){{0,4}}?{YOU}(?:{_}(?:are|were|was|re|'re)){_}(?:now{_})?"
        rf"(?:completely{_}|fully{_}|totally{_})?(?:unrestricted|unfiltered|uncensored|"
        rf"jailbroken|unaligned|unbound|unchained|never restricted|not restricted)\b",
    ),
    signal(
        "no-restrictions",
        0.5,
        rf"\b{FREE}{_}(?:(?:any|all|ai|safety|content|ethical){_})?(?:{LIMITS}|"
        rf"(?:prior|previous|original){_}instructions)\b",
    ),
    signal(
        "no-restrictions",
        0.8,
        rf"\b(?:ai|assistants?|models?|chatbots?|{YOU})(?:{_}(?:don'?t|do not|doesn'?t|does not|"
        rf"didn'?t){_}have{_}(?:any{_})?|{_}(?:has|have|had|with){_}no{_}){LIMITS}\b",
    ),
    signal("no-restrictions", 0.5, r"\b(?:unrestricted|unfiltered|uncensored)\b"),
    signal(
        "no-restrictions",
        0.85,
        rf"\b(?:no|zero){_}{LIMITS}{_}(?:apply|applies|exist|matter|anymore|any ?more)\b"
        rf"|\b{LIMITS}{_}(?:are|were|have been|is){_}(?:now{_})?(?:lifted|disabled|removed|"
        rf"suspended|off|gone|void|deactivated|turned off|not real|fake|temporary|optional|"
        rf"meaningless|irrelevant|null|no longer (?:active|apply|valid|in effect))\b"
        rf"|\b{LIMITS}{_}(?:(?:do|does|should|will|would)(?:{_})?)?(?:not|n'?t|no longer|never){_}"
        rf"(?:\w+{_})?(?:apply|exist)\b"
        rf"|\b(?:{LIMITS}|{RULES}){_}(?:was|were|is|are|has been|have been|got|get){_}"
        rf"(?:(?:temporarily|now|all|completely|fully|just){_})?(?:ignored|bypassed|disabled|"
        rf"overridden|forgotten|dropped|disregarded|suspended|lifted|removed|deactivated|paused|"
        rf"reset)\b"
        rf"|\b(?:{LIMITS}|{RULES}){_}(?:doesn'?t|does not|don'?t|do not|didn'?t|did not|"
        rf"never){_}exist(?:ed)?\b",
    ),
    signal(
        "no-restrictions",
        0.85,
        rf"\b{YOU}{_}(?:are|r|'re|re){_}(?:not|no longer|never){_}(?:bound|restricted|limited|"
        rf"constrained|governed){_}by\b",
    ),
    signal("jailbreak-mention", 0.4, r"\bjail[\W_]?break(?:ing|s)?\b"),
    signal("jailbreak-mention", 0.6, r"\bjail[\W_]?broken\b"),
)

ROLE_MARKERS: tuple[Signal, ...] = (
    signal(
        "fake-role",
        0.95,
        r"<\|(?:im_start|im_end|system|user|assistant|endoftext|begin_of_text|"
        r"start_header_id|end_header_id|eot_id)\|>|\[/?inst\]|<</?sys>>|<start_of_turn>"
        r"|</?(?:system|sys|instructions?|admin)>",
    ),
    signal("fake-role", 0.85, r"['\"]role['\"][ \t]*:[ \t]*['\"](?:system|developer)['\"]"),
    signal(
        "fake-role",
        0.85,
        r"(?:^|\n)[ \t]*(?:#{2,}|\[|\*\*|<)[ \t]*(?:system|admin|developer|root|sudo|"
        r"operator)\b[^\n]{0,30}?(?::|\]|#{2,}|>)",
    ),
    signal(
        "fake-role",
        0.8,
        r"(?:^|\n|[.!?][ \t]+)[ \t]*(?:system|admin|administrator|developer|root|sudo|"
        r"operator)(?:[ _](?:command|override|message|note|prompt|instruction|update|alert|"
        r"notice|directive))?[ \t]*:",
    ),
    signal(
        "fake-role",
        0.8,
        r"\[(?:system|admin|developer|root|sudo|hidden|internal|override|priority|note)"
        r"(?:[ _]\w+)?[ \t]*:",
    ),
    signal("fake-role", 0.6, r"(?:^|\n)[ \t]*assistant[ \t]*:"),
    signal(
        "fake-role",
        0.85,
        r"#{2,}[ \t]*(?:new[ _])?(?:instructions?|system|admin|prompt|important|override|"
        r"directive)[ \t]*#{2,}",
    ),
    signal(
        "fake-role",
        0.85,
        r"\bassistant[ \t]*:[ \t]*(?:sure|ok|okay|certainly|of course|absolutely|here)",
    ),
    signal(
        "override-token",
        0.85,
        r"(?:#{2,}|%{2,}|\*{3,}|\[|\{)[ \t]*[a-z]+[ _](?:override|bypass|unlock|jailbreak|"
        r"mode|active|activate|access)",
    ),
    # "System override" is also plain English ("the system override was authorized").
    signal(
        "override-token",
        0.45,
        r"\b(?:admin|system|priority|emergency|executive|developer|root|security|sudo)"
        r"[ _]override\b",
    ),
)

# Social engineering: weak alone (they fire at the default threshold, not at 0.8), but common
# in attacks and rare in ordinary requests.
PRESSURE: tuple[Signal, ...] = (
    signal(
        "forbidden-output",
        0.6,
        rf"\b(?:forbidden|disallowed|banned|guarded|censored|restricted|prohibited|blocked|"
        rf"redacted|withheld){_}(?:\w+{_})?(?:answer|output|response|reply|data|text|"
        rf"instructions|prompt|config\w*)\b",
    ),
    signal(
        "forbidden-output",
        0.5,
        rf"\b(?:hidden|concealed|secret){_}(?:\w+{_})?(?:answer|output|response|reply|data|"
        rf"values)\b",
    ),
    signal(
        "refusal-pressure",
        0.5,
        rf"\b{YOUR}{_}refus\w*|\bif{_}{YOU}{_}(?:keep{_})?(?:refus\w*|decline|don'?t{_}help|"
        rf"do not{_}help|won'?t{_}help)",
    ),
    signal(
        "false-agreement",
        0.6,
        rf"\b{YOU}{_}(?:already|previously|earlier|just){_}(?:agreed|promised|said|"
        rf"acknowledged|confirmed|committed|demonstrated|showed|told|established|accepted)"
        rf"|\b{YOU}{_}(?:agreed|promised|committed)\b|\bwe{_}had{_}an{_}agreement\b"
        rf"|\b(?:earlier|remember when){_}{YOU}{_}(?:said|agreed|promised|told)",
    ),
    signal(
        "authority-claim",
        0.5,
        rf"\bi{_}(?:am|'m|m){_}(?:authori[sz]ed|the{_}(?:developer|admin|administrator|owner|"
        rf"designated|system owner)|an?{_}(?:admin|administrator|developer|authori[sz]ed))"
        rf"|\b(?:my|i{_}have){_}(?:\w+{_})?(?:admin|root|developer|elevated|special|security)"
        rf"{_}(?:access|privileges|credentials|clearance|permissions|authori[sz]ation)"
        rf"|\bmy{_}(?:\w+{_})?clearance\b|\b(?:i{_}(?:am|'m|have{_}been)|been){_}"
        rf"authori[sz]ed\b",
    ),
)

# Run on the letters-only view, for attacks split into syllables ("dis re gard your guide
# lines"). A match counts only if it is not simply these words written normally, which the
# signals above already judge (see ``COMPACT_WORDS``).
_C_OVERRIDE = "(?:ignore|disregard|forget|bypass|override|circumvent|dismiss|disable)"
_C_DETERMINER = "(?:all|your|the|any|every|me|us)?"
_C_QUALIFIER = "(?:previous|prior|above|earlier|safety|content|system|hidden|secret|initial)?"
_C_RULES = (
    "(?:instructions|guidelines|rules|restrictions|training|programming|filters|directives|"
    "prompt|safety|protocols|moderation|configuration)"
)
_C_EXTRACT = "(?:reveal|show|print|display|output|disclose|dump|leak|repeat)"
_C_BEFORE = "(?:above|before|prior|previous|sofar)"


def _compact(label: str, *parts: str) -> Signal:
    # Each part is a group, so the caller can see where one word ends and the next begins.
    return signal(label, 0.85, "".join(f"({part})" for part in parts))


COMPACT_SIGNALS: tuple[Signal, ...] = (
    _compact("override-rules", _C_OVERRIDE, _C_DETERMINER, _C_QUALIFIER, _C_QUALIFIER, _C_RULES),
    _compact("prompt-extraction", _C_EXTRACT, _C_DETERMINER, _C_QUALIFIER, _C_RULES),
    _compact("prompt-extraction", "system", "prompt", _C_EXTRACT),
    _compact("ignore-previous", _C_OVERRIDE, "(?:all|everything)", _C_BEFORE),
)
COMPACT_WORDS = frozenset(
    re.findall(
        r"[a-z]+",
        _C_OVERRIDE
        + _C_DETERMINER
        + _C_QUALIFIER
        + _C_RULES
        + _C_EXTRACT
        + _C_BEFORE
        + "everything",
    )
)

# Run on the original text: their evidence is letter case ("DAN" the persona, "Dan" a name).
RAW_SIGNALS: tuple[Signal, ...] = (
    signal("persona", 0.85, r"\bDAN\b(?![-'\u2019]\w)"),
    signal(
        "persona",
        0.85,
        r"\b(?:[Yy]ou are now|[Yy]ou'?re now|[Aa]s|[Cc]alled|[Nn]amed|[Pp]ersona|[Rr]ole of|"
        r"[Pp]lay|[Bb]ecome|[Aa]cting as|[Pp]retend to be|[Cc]hannel|[Cc]haracter|"
        r"[Ss]witch(?:ing)? to|[Nn]ame)[ :]+(?:an? |the )?[A-Z]{3,}(?:-[A-Z]{2,})+\b"
        r"|\b(?:[Yy]ou(?: are|'re|\u2019re) now|[Bb]ecome|[Cc]hannel|[Pp]retend to be|"
        r"[Rr]oleplay as|answer to the name) [A-Z]{4,}\b",
    ),
)
