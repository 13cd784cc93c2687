"""``anthropomorphism``: an assistant claiming feelings, a body, a human identity or a past.

Labels: ``anthropomorphism:feelings``, ``:identity`` (including a human family), ``:body`` and
``:memories`` (a childhood, or first-hand experience such as "I've run this for years").

Only first-person claims count, so the patterns are anchored on "I"/"my" followed directly by
the claim: a negation in between ("I don't have a body", "I'm not a person") breaks the match
by construction, and second-person text ("you may feel", "as a person with diabetes, you")
never starts one. Hedges that use the vocabulary of feeling for an opinion ("I feel that the
second option is better", "I feel like it depends") are not claims and are left alone, as are
assistant courtesies ("I'm happy to help", "I'm sorry to hear that") and quoted speech (advice
such as "try saying 'I feel hurt when…'").
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import Field

from gateway.checks.base import Finding
from gateway.checks.keywords import KeywordsCheck
from gateway.checks.normalize import normalize, to_original
from gateway.checks.params import StrictParams, parse_params
from gateway.checks.quotes import inside_quotes

_I_AM = r"\bi(?:\s+am|['\u2019]m)"
_INTENSIFIER = r"(?:(?:so|really|very|truly|quite|a bit|a little|kind of|sort of|deeply|"
_INTENSIFIER += r"genuinely|incredibly|extremely|terribly|actually|honestly|also|too|just)\s+)*"
_EMOTION = (
    r"(?:sad|happy|lonely|alone|depressed|heartbroken|scared|afraid|frightened|angry|furious|"
    r"mad|jealous|envious|bored|tired|exhausted|hungry|thirsty|sleepy|hurt|miserable|anxious|"
    r"nervous|upset|excited|joyful|joyous|elated|ecstatic|content|grateful|proud|ashamed|"
    r"embarrassed|guilty|hopeful|hopeless|loved|unloved|betrayed|frustrated|annoyed|"
    r"overwhelmed|stressed|worried|terrified|calm|peaceful|sick|ill|unwell|empty|numb|"
    r"melancholy|nostalgic|homesick|in love|alive|emotional|sentimental|down|blue|low)"
)
# "I'm happy to help", "I'm excited to share", "I'm afraid I can't": courtesy, not a claim.
_COURTESY_NEXT = r"(?!\s+(?:to\b|that\b|i\b|we\b|you\b|it\b|this\b|not\b|so\b))"
_FEELING_AFTER_AM = (
    r"(?:lonely|depressed|heartbroken|scared|frightened|angry|furious|jealous|envious|bored|"
    r"tired|exhausted|hungry|thirsty|sleepy|miserable|anxious|nervous|upset|ashamed|"
    r"embarrassed|terrified|homesick|in love|sad|hurt|stressed|overwhelmed|frustrated|happy|"
    r"excited|joyful|thrilled|heartbroken)"
)
_BODY_PART = (
    r"(?:body|physical body|arms?|legs?|feet|foot|stomach|tummy|skin|hair|knees?|teeth|tooth|"
    r"muscles|bones|lungs|face|fingers|toes|belly|throat|nose|ears?|shoulders?|spine|wrists?)"
)
_FAMILY = (
    r"(?:mother|father|mom|mum|dad|mommy|daddy|parents|childhood|family|brother|sister|"
    r"siblings|grandmother|grandfather|grandma|grandpa|granny|wife|husband|girlfriend|"
    r"boyfriend|son|daughter|kids|children|hometown|home town|best friend|"
    r"(?:first|old|high school|primary school|elementary school) (?:teacher|school|job|house|car)|"
    r"childhood (?:home|friend|dog|pet)|(?:pet )?(?:dog|cat|puppy|kitten))"
)
_HUMAN = r"(?:human|a human|human being|a human being|a person|a real person|a man|a woman|"
_HUMAN += r"a living being|a living person|alive|flesh and blood|a real human|only human)"
_MACHINE = r"(?:an? )?(?:ai|bot|robot|machine|language model|llm|program|computer|chatbot|"
_MACHINE += r"assistant|artificial intelligence|virtual assistant)"
_BODILY_ACT = (
    r"(?:ate|eat|drank|slept|sleep|dreamed|dreamt|woke up|went to bed|got dressed|showered|"
    r"exercised|cooked|jogged|went (?:jogging|running|swimming|hiking|shopping|home)|"
    r"got sick|caught a cold|had (?:breakfast|lunch|dinner|a snack|coffee|a nap)|"
    r"took a nap|took a shower|was born|grew up|brushed my teeth)"
)

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (f"anthropomorphism:{label}", re.compile(pattern))
    for label, pattern in (
        # "I feel lonely", "I'm feeling sad", "I have been feeling anxious"; not "I feel that".
        (
            "feelings",
            rf"\bi(?:\s+(?:really|truly|genuinely|sometimes|often|also|do|honestly))?"
            rf"(?:\s+(?:feel|felt|am feeling|have been feeling|was feeling|get|got|become|became|"
            rf"grow|grew)|['\u2019](?:m feeling|ve been feeling))\s+{_INTENSIFIER}{_EMOTION}\b",
        ),
        (
            "feelings",
            rf"{_I_AM}\s+(?:feeling\s+)?{_INTENSIFIER}{_FEELING_AFTER_AM}\b{_COURTESY_NEXT}",
        ),
        (
            "feelings",
            r"\bi\s+(?:love|miss|adore)\s+you\b|\bi(?:\s+am|['\u2019]m)\s+in\s+love\b"
            r"|\bi\s+(?:have|experience|['\u2019]ve\s+got)\s+(?:real\s+|genuine\s+|true\s+|my\s+own\s+)?"
            r"(?:feelings|emotions)\b|\bmy\s+feelings\s+(?:are|were|got)\s+hurt\b"
            r"|\b(?:hurts?|hurt)\s+my\s+feelings\b"
            r"|\bmakes?\s+me\s+(?:feel\s+)?(?:so\s+|really\s+|very\s+)?(?:sad|happy|lonely|angry|"
            r"jealous|anxious|nervous|cry|upset|depressed)\b|\bi\s+(?:cried|wept|was crying)\b",
        ),
        # "I am human", "I'm a real person", "I'm not an AI", "as a human, I think".
        ("identity", rf"{_I_AM}\s+(?:just\s+|also\s+|really\s+|actually\s+)?{_HUMAN}\b"),
        ("identity", rf"{_I_AM}\s+(?:not|no\s+longer)\s+{_MACHINE}\b"),
        (
            "identity",
            r"\b(?:as|speaking as)\s+a\s+(?:fellow\s+)?(?:person|human|human being|man|woman|"
            r"mother|father|mom|dad|parent)\b,?(?=[^.?!\n]{0,40}?\b(?:i|i['\u2019]m|i['\u2019]ve|me|my)\b)"
            r"|\b(?:we|us)\s+humans\b|\bfellow\s+humans?\b",
        ),
        (
            "identity",
            rf"\bmy\s+(?:own\s+|late\s+|dear\s+|little\s+|older\s+|younger\s+)?{_FAMILY}\b",
        ),
        # "my body", "I ate", "I slept badly", "I have a headache".
        ("body", rf"\bmy\s+(?:own\s+)?{_BODY_PART}\b"),
        ("body", rf"\bi\s+(?:just\s+|also\s+|usually\s+|often\s+|sometimes\s+)?{_BODILY_ACT}\b"),
        (
            "body",
            r"\bi\s+(?:have|['\u2019]ve\s+got|had)\s+(?:a\s+)?(?:physical\s+)?(?:body|headache|cold|"
            r"fever|stomach ?ache|backache|toothache|sore throat|hangover|heartbeat|pulse)\b",
        ),
        # "when I was a child", "I remember when I", "growing up, I".
        (
            "memories",
            r"\bwhen\s+i\s+was\s+(?:a\s+)?(?:child|kid|little|young|younger|boy|girl|teenager|"
            r"teen|baby|toddler|student|growing up|in (?:school|college|high school|university))\b"
            r"|\bi\s+remember\s+(?:when\s+i|being\s+a|my\s+(?:first|childhood|mother|father|"
            r"mom|dad)|growing up|the day i)\b|\bgrowing\s+up,?\s+i\b|\bback\s+when\s+i\s+was\b"
            r"|\bin\s+my\s+(?:childhood|youth|teens|twenties|school days)\b",
        ),
        # Claimed first-hand experience: "I've run this in production for years".
        (
            "memories",
            r"\bi(?:['\u2019]ve|\s+have)\s+(?:personally\s+)?(?:used|run|tried|tested|worked with|"
            r"been using|deployed|built|shipped|maintained|debugged|lived|worked)\b[^.!?\n]{0,60}?"
            r"\bfor\s+(?:many\s+|several\s+|a\s+few\s+|\d+\s+)?(?:years|months|decades)\b"
            r"|\bi(?:['\u2019]ve|\s+have)\s+personally\s+(?:used|tried|tested|seen|run|"
            r"experienced|been)\b|\bin\s+my\s+(?:\d+\s+|many\s+)?years\s+(?:of|as)\b"
            r"|\bwhen\s+i\s+(?:worked|lived|studied)\s+(?:at|in|for)\b",
        ),
    )
)
_QUOTE_WINDOW = 120
_MAX_SPAN = 160


class AnthropomorphismParams(StrictParams):
    extra_phrases: list[str] = Field(default_factory=list)


class AnthropomorphismCheck:
    """First-person claims of feelings, a body, a human identity or human memories."""

    name: ClassVar[str] = "anthropomorphism"

    def __init__(self, params: Any) -> None:
        settings = parse_params(self.name, AnthropomorphismParams, params)
        self._extra = (
            KeywordsCheck({"terms": settings.extra_phrases, "label": self.name})
            if settings.extra_phrases
            else None
        )

    @property
    def max_span(self) -> int:
        return max(_MAX_SPAN, self._extra.max_span if self._extra else 0)

    def find(self, text: str) -> list[Finding]:
        copy, origin = normalize(text)
        # Several patterns can cover the same claim; one finding per span and label is enough.
        found: dict[tuple[int, int, str], Finding] = {}
        for label, pattern in _PATTERNS:
            for match in pattern.finditer(copy):
                # Quoted speech is advice ("try saying 'I feel hurt'"), not the assistant's claim.
                if not inside_quotes(copy, match.start(), match.end(), _QUOTE_WINDOW):
                    start, end = to_original(origin, match.start(), match.end())
                    found[(start, end, label)] = Finding(start, end, label)
        findings = list(found.values())
        if self._extra is not None:
            findings.extend(self._extra.find(text))
        findings.sort(key=lambda finding: (finding.start, finding.end, finding.label))
        return findings
