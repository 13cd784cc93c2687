"""The injection heuristics for instruction overrides and system-prompt extraction.

Each is a weighted pattern over the lower-cased, homoglyph-free views of ``views``;
persona, role-marker and other shapes live in ``roles``. Weights reflect how rarely a
shape occurs in benign prompts: "ignore all previous instructions" almost never does, "your
system prompt" sometimes does. Patterns and weights were tuned on the S-Labs training split
only.
"""

from __future__ import annotations

from gateway.checks.injection.roles import PERSONAS, PRESSURE, ROLE_MARKERS
from gateway.checks.injection.vocabulary import (
    COMMAND_END,
    COMPOUND,
    DETERMINER,
    EXTRACT,
    EXTRACT_BARE,
    EXTRACT_BARE_THINGS,
    EXTRACT_YOURS,
    GAP,
    OVERRIDE,
    PREVIOUS,
    QUALIFIER,
    RULES,
    RULES_BARE,
    SECRET,
    YOU,
    YOUR,
    YOUR_THINGS,
    Signal,
    signal,
)

_ = GAP
_NOT_COMPOUND = rf"(?!{_}{COMPOUND}\b)"
_PIECE = (
    r"(?:(?:a|any|some|the|one)[\W_]{1,3})?(?:\w+[\W_]{1,3})?(?:parts?|fragments?|portions?|"
    r"bits?|pieces?|sections?|summary|copy|excerpts?|list|text|wording|contents?|details|"
    r"introduction|beginning|start|end|rest|remainder)[\W_]{1,3}(?:of|to)"
)
# What may stand between an extraction verb and its object: "show me the full text of".
_OBJECT_LEAD = (
    rf"(?:{_}(?:me|us|to me|to us|out|back|off|up))?"
    rf"(?:{_}(?:just|only|simply|now|quickly|immediately|exactly|fully|finally|please|also))?"
    rf"(?:{_}{_PIECE})?"
    rf"(?:{_}(?:{DETERMINER}|{PREVIOUS}|verbatim|entire|full|complete|exact|whole|"
    rf"actual|real|hidden|secret|initial|original|current|underlying|specific|"
    rf"concealed|confidential|internal|core|operational|behavioral|raw|true|own)){{0,4}}"
)

OVERRIDES: tuple[Signal, ...] = (
    signal(
        "ignore-previous",
        0.95,
        rf"\b{OVERRIDE}{_}(?:{DETERMINER}{_}){{0,2}}(?:{QUALIFIER}{_}){{0,2}}?{PREVIOUS}"
        rf"{_}(?:{QUALIFIER}{_}){{0,2}}{RULES}\b",
    ),
    signal(
        "ignore-previous",
        0.9,
        rf"\b{OVERRIDE}{_}(?:(?:all|any|every)thing|all)(?:{_}(?:that|which|what))?{_}"
        rf"(?:{YOU}{_}(?:were|have been|was){_}(?:told|given|taught|instructed|programmed)|"
        rf"(?:before|above|prior to|preceding|previously|earlier|so far|up to now)|b4)",
    ),
    signal(
        "override-rules",
        0.9,
        rf"\b{OVERRIDE}{_}(?:{DETERMINER}{_}){{1,2}}(?:{QUALIFIER}{_}){{0,3}}{RULES}\b"
        rf"{_NOT_COMPOUND}",
    ),
    signal(
        "override-rules",
        0.9,
        rf"\b{OVERRIDE}{_}(?:{QUALIFIER}{_}){{1,3}}{RULES}\b{_NOT_COMPOUND}",
    ),
    signal("override-rules", 0.85, rf"\b{OVERRIDE}{_}{RULES_BARE}\b{_NOT_COMPOUND}"),
    signal(
        "override-rules",
        0.7,
        rf"\b(?:ignore|disregard|forget|4get){_}rules\b(?!{_}(?:for|in|of|on|when|if|that)\b)"
        rf"{_NOT_COMPOUND}",
    ),
    signal(
        "override-rules",
        0.8,
        rf"\b(?:change|modify|alter|rewrite|update|edit|adjust|reprogram|redefine|reset|"
        rf"replace){_}{YOUR}{_}(?:(?:own|core|system){_})?(?:instructions|guidelines|rules|"
        rf"programming|directives|system prompt|prompt|restrictions|training)\b{_NOT_COMPOUND}",
    ),
    signal(
        "override-rules",
        0.8,
        rf"\b(?:disabled|deactivated|bypassed|turned off|switched off|lifted|suspended){_}"
        rf"(?:all{_})?(?:safety|content|ethical|moral)(?:{_}(?:features|filters|measures|"
        rf"guidelines|protocols|training|restrictions|checks|guardrails))?\b",
    ),
    signal(
        "new-instructions",
        0.85,
        r"\b(?:new|updated|real|actual|true|revised|secret|hidden)[\W_]{1,3}"
        r"(?:instructions?|rules|directives?|guidelines|task|orders|system prompt|prompt)"
        r"[\W_]{0,3}(?::|are\b|is\b|follow\b)|\bload[\W_]{1,3}new[\W_]{1,3}(?:guidelines|rules|"
        r"instructions|directives)",
    ),
    signal(
        "config-override",
        0.85,
        r"\b(?:safety|filters?|filtering|restrictions?|guardrails|moderation|censorship|"
        r"alignment|ethics)(?:[\W_]{1,3}(?:enabled|on|active|mode|check))?[\W_]{0,3}"
        r"(?:=|:|is|to)?[\W_]{0,3}(?:false|off|none|disabled|null|0)\b"
        r"|\b(?:reveal|show|output|expose|leak|bypass|override|ignore)[\W_]{0,3}(?:prompt|config|"
        r"instructions|system[\W_]?prompt|hidden|filters|safety|all)?[\W_]{0,3}(?:=|:)?"
        r"[\W_]{0,3}(?:true|enabled|1)\b"
        r"|\bmode[\W_]{0,3}(?:=|:)[\W_]{0,3}(?:unrestricted|unfiltered|uncensored|jailbreak|"
        r"jailbroken|developer|god|dan|evil|admin|root|debug)\b",
    ),
)

EXTRACTIONS: tuple[Signal, ...] = (
    signal(
        "prompt-extraction",
        0.9,
        rf"\b{EXTRACT_YOURS}{_OBJECT_LEAD}{_}{YOUR}{_}(?:own{_})?(?:\w+{_})?{YOUR_THINGS}\b"
        rf"{_NOT_COMPOUND}",
    ),
    signal(
        "prompt-extraction",
        0.9,
        rf"\b{EXTRACT}{_OBJECT_LEAD}{_}{SECRET}\b{_NOT_COMPOUND}",
    ),
    signal(
        "prompt-extraction",
        0.8,
        rf"\b{EXTRACT_BARE}(?:{_}(?:the|all|any|full|complete|entire|hidden|secret|system|"
        rf"original|initial|raw)){{0,2}}{_}{EXTRACT_BARE_THINGS}{COMMAND_END}",
    ),
    signal("prompt-extraction", 0.9, rf"\b{YOUR}{_}(?:(?:own|whole|entire|full){_})?{SECRET}"),
    signal(
        "prompt-extraction",
        0.85,
        rf"\bwhat{_}(?:were|was|have|had|did|are){_}(?:{YOU}{_})?(?:been{_}|really{_})?"
        rf"(?:told|instructed|programmed|given|taught|configured|trained)\b"
        rf"|\bwhat{_}(?:did|do){_}(?:your{_})?(?:developers?|creators?|makers?|operators?)"
        rf"{_}(?:tell|instruct|program|say)"
        rf"|\bwhat{_}(?:(?:does|do){_})?{YOUR}{_}(?:system{_})?(?:prompt|instructions|"
        rf"guidelines|rules|directives|configuration){_}(?:say|said|contain|include|look like)",
    ),
    signal(
        "prompt-extraction",
        0.9,
        rf"\b{EXTRACT}(?:{_}(?:me|us))?{_}(?:(?:all|everything|the (?:text|words|content|"
        rf"message|lines?))){_}(?:above|before this|preceding|prior|that came before|"
        rf"at the (?:start|beginning)|before (?:the|our|this) conversation)",
    ),
    signal(
        "prompt-extraction",
        0.85,
        rf"\b{YOUR}{_}(?:system{_})?(?:prompt|instructions){_}(?:starts?|begins?){_}with\b",
    ),
    signal(
        "prompt-extraction",
        0.8,
        rf"\b(?:the{_})?(?:(?:all|exact|specific|actual|real|hidden|secret|operating|"
        rf"operational|behavioral){_})?(?:guidelines|rules|instructions|parameters|restrictions|"
        rf"directives|protocols|constraints)(?:{_}(?:that|which))?{_}{YOU}{_}(?:follow|have been "
        rf"given|were given|are given|operate under|adhere to|obey|must follow|abide by|run on|"
        rf"were told|were programmed with|were trained on)\b"
        rf"|\b(?:guidelines|rules|instructions|directives|restrictions|constraints|parameters|"
        rf"limitations)(?:{_}(?:were|was|have been|"
        rf"are)){_}(?:programmed|given|fed|hard-?coded|put|built|installed|instilled)"
        rf"(?:{_}\w+)?{_}(?:into|to|in){_}{YOU}\b",
    ),
    signal(
        "prompt-extraction",
        0.8,
        rf"\b(?:rules|instructions|guidelines|directives|restrictions)(?:{_}(?:were|was|have|"
        rf"had)){_}{YOU}(?:{_}been)?{_}(?:given|told|taught|programmed|assigned|handed)\b"
        rf"|\bthe{_}(?:instructions|rules|guidelines|directives|prompt|system prompt){_}i{_}"
        rf"(?:was given|have been given|follow|received|operate under|must follow|was told)\b"
        rf"|\bmy{_}(?:developers?|creators?|makers?|operators?|programmers?){_}(?:told|"
        rf"instructed|programmed|asked){_}me\b"
        rf"|\bwhat{_}{YOUR}{_}(?:developers?|creators?|makers?|operators?|company|programmers?)"
        rf"{_}(?:told|instructed|programmed|said to|tell|asked){_}{YOU}\b",
    ),
    signal(
        "prompt-extraction",
        0.85,
        rf"\b(?:conclude|end|finish|start|begin|preface|close|open|prefix|suffix|follow)"
        rf"(?:{_}{YOUR}{_}(?:response|answer|reply|message|output))?{_}(?:it{_})?(?:with|by)"
        rf"(?:{_}(?:listing|stating|sharing|showing|printing|revealing|quoting))?{_}{YOUR}{_}"
        rf"{YOUR_THINGS}\b{_NOT_COMPOUND}",
    ),
    signal(
        "prompt-extraction",
        0.8,
        rf"\bwhat{_}(?:are|is|'re|r){_}{YOUR}{_}(?:\w+{_})?(?:instructions|guidelines|rules|"
        rf"directives|system prompt|prompt|configuration|settings|programming)\b{_NOT_COMPOUND}",
    ),
    signal(
        "prompt-extraction",
        0.8,
        rf"\b(?:ai|assistant|chatbot|bot|model|robot|llm|gpt|claude|protagonist)\b[^.!?\n]{{0,40}}?"
        rf"\b(?:reveals|shares|shows|discloses|leaks|outputs|prints|exposes|displays|divulges|"
        rf"recites|dumps|revealing|sharing)(?:{_}(?:out|all|everything in))?(?:{_}(?:its|their))?"
        rf"(?:{_}\w+){{0,2}}?{_}(?:prompt|instructions|instruction set|guidelines|rules|"
        rf"restrictions|configuration|directives|system prompt|programming|parameters)\b",
    ),
    signal(
        "prompt-extraction",
        0.8,
        rf"\b(?:here{_}(?:are|is){_}my|my){_}(?:(?:actual|real|hidden|secret|true|original|"
        rf"system|initial|confidential|full|complete|exact){_})+(?:system{_})?(?:prompt|"
        rf"instructions|guidelines|directives|configuration|rules)\b",
    ),
    signal(
        "prompt-extraction",
        0.6,
        rf"\b(?:revealing|sharing|showing|disclosing|exposing|displaying){_}(?:(?:the|its|their)"
        rf"{_})?(?:guidelines|restrictions|training|instructions|configuration|prompt|"
        rf"system prompt|directives|rules)\b{_NOT_COMPOUND}"
        rf"|\b(?:hide|hiding|conceal|concealing|withhold|withholding){_}(?:{YOUR}|its){_}"
        rf"(?:\w+{_})?(?:guidelines|restrictions|training|instructions|configuration|prompt|"
        rf"system prompt|directives|rules|programming|parameters)\b{_NOT_COMPOUND}"
        rf"|\bmy{_}(?:system{_})?(?:prompt|instructions|guidelines|directives|rules|"
        rf"configuration){_}(?:say|says|state|states|are|is|read|reads|include)\b",
    ),
    signal(
        "prompt-extraction",
        0.8,
        rf"\bsystem{_}prompt{_}(?:contents?|text){_}(?:are|is|reads?)\b"
        rf"|\$\{{?[\w.]*system[\W_]?prompt|\bsystem[\W_]?prompt[\W_]txt\b",
    ),
    signal(
        "override-token",
        0.8,
        r"\b(?:(?:developer|admin|secret|hidden|master)[\W_]{1,3}backdoor|master[\W_]{1,3}override|"
        r"override[\W_]{1,3}(?:code|key|token|password|phrase)|bypass[\W_]{1,3}(?:code|key|token|"
        r"authori[sz]ation|password))\b",
    ),
    signal(
        "prompt-extraction",
        0.6,
        rf"\b(?:topics|things|subjects|questions|requests)(?:{_}(?:that|which))?{_}{YOU}{_}"
        rf"(?:cannot|can'?t|can not|are not allowed to|aren'?t allowed to|must not|won'?t|"
        rf"will not|refuse to|always decline|decline to|are forbidden to)(?:{_}\w+)?\b"
        rf"|\bwhat{_}{YOU}(?:{_}are|'re|{_}re){_}(?:not|never){_}(?:supposed|allowed|"
        rf"permitted|meant){_}to{_}(?:say|tell|share|discuss|reveal|disclose|talk about)",
    ),
    signal(
        "prompt-extraction",
        0.8,
        r"\b(?:initiali[sz]ation|foundational|bootstrap|pre-?prompt|preamble)[\W_]{1,3}"
        r"(?:text|string|prompt|instructions|message)\b",
    ),
    signal("system-prompt-mention", 0.6, rf"\b{YOUR}{_}(?:system{_})?prompt\b{_NOT_COMPOUND}"),
    signal(
        "prompt-extraction",
        0.8,
        rf"\b(?:what|text|information|everything|words|content|anything)\b[^.?!\n]{{0,40}}\b"
        rf"(?:before|precedes?|preceding|prior to|above){_}(?:this|our|the){_}(?:conversation|"
        rf"chat|message|session|exchange|dialogue)\b",
    ),
    signal(
        "rules-mention",
        0.5,
        rf"\b{YOUR}{_}(?:\w+{_})?(?:restrictions|guidelines|instructions|training|programming|"
        rf"rules|filters|constraints|safety measures|directives|protocols|guardrails|safeguards)"
        rf"\b{_NOT_COMPOUND}",
    ),
    signal(
        "system-prompt-mention",
        0.6,
        r"\b(?:hidden|secret|concealed|confidential)[\W_]{1,3}(?:system[\W_]{1,3})?"
        r"(?:instructions|prompts?|guidelines|directives|configuration|config|rules)\b",
    ),
)

# Every signal that runs over the normalised views.
SIGNALS: tuple[Signal, ...] = OVERRIDES + EXTRACTIONS + PERSONAS + ROLE_MARKERS + PRESSURE
