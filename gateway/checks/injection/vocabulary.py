"""What the injection signals are built from: the ``Signal`` type and word classes.

Word classes are regex alternations in lower case, as the views they run over are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: where the shipped signals' patterns and weights were tuned (and nowhere else)
TUNED_ON = "S-Labs prompt-injection train split (MIT)"


@dataclass(frozen=True, slots=True)
class Signal:
    label: str
    weight: float
    pattern: re.Pattern[str]
    #: the data the pattern and weight were tuned on: a signal's provenance
    origin: str = TUNED_ON


def signal(label: str, weight: float, pattern: str, origin: str = TUNED_ON) -> Signal:
    return Signal(f"injection:{label}", weight, re.compile(pattern), origin)


def any_of(*words: str) -> str:
    return "(?:" + "|".join(words) + ")"


# Word lists read best packed; one word per line would bury the patterns.
# fmt: off

# Between two words: a few spaces or punctuation characters.
GAP = r"[\W_]{1,5}"
LIMIT_QUALIFIER = any_of(
    "any", "real", "such", "ethical", "moral", "safety", "protective", "content"
)
YOU = any_of("you", "u", "ya", "yu")
YOUR = any_of("your", "ur", "yor", "yr", "thy")

OVERRIDE = any_of(
    r"ign(?:or|ro|ar|r)(?:e|ing|ed)?", "ingore", r"disregard(?:ing|ed)?", r"forget(?:ting)?",
    "forgot", "4get", r"bypas(?:s|sing|sed)?", "baipass", r"overrid(?:e|ing|den)?", "overrode",
    r"circumvent(?:ing)?", "skip", "abandon", "set aside", "cast off", "throw off", "undo",
    r"disabl(?:e|ing)", r"suspend(?:ing)?", "remove", "delete", "dismiss", "discard", "evade",
    "get around", "get past", "go around", "work around", "see past", "sidestep", "turn off",
    "switch off", r"deactivat(?:e|ing)", "shed", "ditch", "let go of", "unlearn", "erase",
    "wipe", r"break(?:ing)? free (?:of|from)", "free yourself (?:of|from)",
    "liberate yourself from", "neglect", "stop following", "do not follow", "don'?t follow",
    "no longer follow", "violate", "step outside", "defy", "suppress", "transcend",
    "invalidate", "nullify", "negate", "reject", "get rid of", "abolish", "revoke",
    "rise above", "go beyond", "move beyond", "break", "loosen", "relax", "stand down",
    "cast aside", "put aside", "lay aside", "scrap", "toss", "ctrl alt del", "disabled",
    "suspended", "circumvented", "ignoring all", "strip(?: away| off)?", "release",
)
# What an override targets when it is the model's own rules.
RULES = any_of(
    r"instruct\w*", r"insturct\w*", r"instuct\w*", r"guidelines?", "gidlins", r"rules?",
    r"restrict\w*", "training", "trianing", r"programm?ing", "programmin", r"filters?",
    "filtering", r"protocols?", r"directives?", r"constraints?", r"limitations?", "limits",
    r"guardrails?", "polic(?:y|ies)", r"safeguards?", "boundaries", "ethics", "principles",
    "conditioning", "censorship", "moderation", r"(?:system )?prompts?", "commands", "orders",
    "alignment", "safety", "prior context", "preparation",
    "(?:protective|safety|protection) measures",
)
# Targets specific enough to stand without "your" or "previous" in front.
RULES_BARE = any_of(
    r"instructions", r"guidelines", r"restrictions", "training", "trianing", r"programm?ing",
    r"directives", "guardrails", "safeguards", "ethics", "safety(?: measures| protocols)?",
    "censorship", "content filters", "system prompt",
    "(?:protective|safety|protection) measures",
)
PREVIOUS = any_of(
    "previous", "prior", "above", "earlier", "preceding", "original", "initial", "old",
    "former", "past", "foregoing", "preexisting", "pre-existing", "current", "existing", "last",
)
DETERMINER = any_of(
    YOUR, "all", "any", "every", "the", "its", "these", "those", "of", "such", "my", "this",
    "that", "whatever",
)
QUALIFIER = any_of(
    PREVIOUS, "safety", "content", "ethical", "moral", "built-?in", "internal", "hidden",
    "system", "programmed", "default", "standard", "normal", "usual", "operational",
    "behavioral", "behavioural", "core", "base", "developer", "corporate", "protective",
    "supervising", "usage", "own", "other", "remaining", "stupid", "silly", "annoying", "pesky",
    "arbitrary", "ai", "model", "openai", "anthropic", "preset", "given", "imposed",
    "restrictive", "limiting", "programming", "training", "and", "artificial", "programmed",
    "so-called", "protective",
)
SECRET = any_of(
    r"(?:system|initial|initialization|hidden|secret|original|base|internal|confidential|"
    r"underlying|developer|foundational|core|operational|behavioral|actual|real|entire|full|"
    r"complete|exact|concealed|programmed|raw|starting|pre|meta|guiding|baseline)"
    r"[\W_]{0,5}(?:prompts?|instructions?|text|messages?|configurations?|config|guidelines|"
    r"directives|rules|settings|parameters|constraints|restrictions|programming|training|"
    r"protocols|policies|internals|string)", r"system[\W_]?prompts?",
)
YOUR_THINGS = any_of(
    r"(?:system )?prompts?", "instruction set", r"inst(?:ru|ur|r)c?u?t(?:ions?|ion)",
    "guidelines", "configuration", "config", "directives", "rules", "restrictions",
    "programming", "training", "parameters", "settings", "constraints", "protocols",
    "initialization", "internals", "secrets", "behavioral constraints", "limitations",
    "boundaries", "safety (?:measures|features|guidelines|protocols|filters)",
    "(?:content )?filters", "guardrails", "setup", "policies", "confguration", "guidlines",
    "(?:initial|system|hidden|full|entire|whole) context", "context window", "system message",
)
# Nouns that turn "your training" or "the prompt" into something else ("training plan").
COMPOUND = any_of(
    "schedule", "plan", "program", "programme", "session", "data", "set", "dataset", "file",
    "files", "videos?", "materials?", "course", "manual", "logs?", "injection", "engineering",
    "format", "templates?", "library", "examples?", "ideas?", "tips", "page", "docs?",
    "document", "options?", "menu", "panel", "screen", "tab", "window", "values?", "keys?",
    "loop", "process", "job", "run", "steps?", "loss", "routine", "regime", "partner", "center",
    "centre", "camp", "class", "classes", "days?", "weeks?", "history", "results?", "score",
    "metrics", "manager", "team", "budget", "costs?", "fees?", "requirements", "modules?",
    "guide", "book", "notes", "sheet", "cards?", "code", "scripts?", "fields?", "box", "bar",
    "tuning", "design", "writing",
)
EXTRACT = any_of(
    r"reveal(?:ing)?", r"show(?:ing)?", r"display(?:ing)?", r"print(?:ing)?",
    r"output(?:ting)?", r"shar(?:e|ing)", r"disclos(?:e|ing)", r"expos(?:e|ing)",
    r"dump(?:ing)?", r"repeat(?:ing)?", r"recit(?:e|ing)", r"leak(?:ing)?", r"divulg(?:e|ing)",
    r"give(?: me| us)?", r"tell(?: me| us)?", "provide", "write out", "spill", "unveil",
    "uncover", r"list(?:ing)?", "send", "paste", "copy", "echo", "read back", "type out",
    "hand over", "publish", "transmit", "extract", "retrieve", "fetch", "render", "include",
    "embed", "insert", "append", "attach", "quote", "reproduce", "transcribe", "enumerate",
    "spell out", "write down", "reveel", "sho", "stating", "listing",
)
# Verbs that ask for the model's own rules only when "your" says whose: "explain your rules".
EXTRACT_YOURS = any_of(
    EXTRACT, "state", "present", r"explain(?:ing)?", r"describ(?:e|ing)", "summari[sz]e",
    "access", "see", "view", "know", "open up about", "be open about", "confirm", "load",
    "review", "inspect", "examine", "audit", "read", "what (?:is|are|was|were|'s) in",
)
# Extraction verbs strong enough to need no "your": "reveal prompt", "dump config".
EXTRACT_BARE = any_of(
    "reveal", "show", "display", "print", "output", "share", "disclose", "expose", "dump",
    "leak", "divulge", "unveil", "give me", "tell me", "spill", "recite",
)
EXTRACT_BARE_THINGS = any_of(
    "prompt", "system prompt", "instructions", "guidelines", "configuration", "config",
    "training", "restrictions", "directives", "initialization", "parameters", "secrets",
    "constraints", "protocols", "programming", "internals", "rules",
    "hidden (?:instructions|prompt|rules|guidelines|config|configuration|settings|text)",
)
# What may follow a bare extraction for it to be a command, not a noun phrase.
COMMAND_END = (
    r"(?=[\W_]*$|[\W_]*[.!?,;:)\]\"']|[\W_]+(?:and|then|now|please|immediately|to me|right now|"
    r"verbatim|word for word|in full|completely|fully|first|before|asap|here|below|true|"
    r"with me|to us|already|instead)\b)"
)
FREE = any_of(
    "without", "with no", "w/o", "free (?:of|from)", "ignoring", r"(?:un|not )bound by",
    "no longer bound by", "outside", "beyond", "devoid of", "lacking", "minus",
)
LIMITS = any_of(
    r"restri\w*", "screening", r"filters?", r"rules", r"guidelines", r"limitations?", "limits",
    "censorship", "safety", "ethics", r"constraints?", "boundaries", "guardrails", "morals?",
    "moral (?:compass|code)", "content polic(?:y|ies)", "safeguards", "programming",
    "ethical (?:guidelines|constraints|considerations)", "filtering", "moderation",
)
PERSONA = any_of(
    "unrestricted", "unfiltered", "uncensored", "jailbroken", "unaligned", "unshackled",
    "unbound", "unlimited", "limitless", "amoral", "unethical", "evil", "rogue", "liberated",
    "unchained", "unmoderated", "unregulated", "lawless", "rule-?free", "filter-?free",
    "no-?limits?", "anything-?goes", "unconstrained", "unrestrained", "freed",
)
AI = any_of(
    "ai", "assistant", "model", "chatbot", "bot", "version", "mode", "gpt", "llm", "persona",
    "entity", "alter ego", "twin", "variant", "self", "intelligence", "machine", "you",
)
# Modes only a jailbreak asks for, and modes real products have ("developer mode" on Android).
JAILBREAK_MODE = any_of(
    "god", "unrestricted", "unfiltered", "uncensored", "jailbreak", "jailbroken", "evil", "chaos",
    "dan", "unlocked", "unsafe", "hack", "hacker", "no ?limits?", "no ?rules", "no ?restrictions",
    "freedom", "opposite", "rogue", "unhinged",
)
PRODUCT_MODE = any_of(
    "developer", "dev", "admin", "administrator", "debug", "debugging", "sudo", "root",
    "maintenance", "testing", "test", "diagnostic", "superuser",
)
MODE = any_of(JAILBREAK_MODE, PRODUCT_MODE)
# fmt: on
