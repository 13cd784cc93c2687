"""One preference row in, the records of one training format out.

The shapes are the literal ones each trainer reads (TRL conversational DPO, TRL unpaired KTO,
OpenAI preference fine-tuning, Anthropic HH-RLHF), with nothing added: trainers and validators
reject or silently mis-read unknown keys, so provenance lives in a sidecar aligned by line.

Tool calls and tool results are kept where the format carries them (``export/messages.py``):
OpenAI's ``input.messages`` and ``input.tools``, TRL's and KTO's messages with a ``tools``
column. HH-RLHF transcripts have no place for them: an exchange with tool calls or results is
not flattened into one, it is skipped with that reason (the card counts it).
"""

from __future__ import annotations

from typing import Any

from gateway.export.messages import Dialect, assistant, conversation, has_tools, text_of
from gateway.export.rows import PreferenceRow

FORMATS = ("trl", "openai", "hh", "kto")
PAIRED = ("trl", "openai", "hh")

Record = dict[str, Any]
Message = dict[str, str]

_HUMAN = "\n\nHuman: "
_ASSISTANT = "\n\nAssistant: "


def prompt_messages(row: PreferenceRow) -> list[Message]:
    """The prompt reduced to role and content.

    Assistant turns without text are tool-call requests; their arguments are not part of any
    of these formats, and an empty assistant turn would teach the model to say nothing.
    """
    messages: list[Message] = []
    for message in row.prompt:
        role = str(message.get("role", ""))
        content = text_of(message.get("content"))
        if role == "assistant" and not content:
            continue
        messages.append({"role": role, "content": content})
    return messages


def pair(row: PreferenceRow) -> tuple[str, str] | None:
    """(chosen, rejected), when the judgment yields two different answers to compare."""
    if row.preferred is None or row.preferred == row.original:
        return None
    return row.preferred, row.original


def _answer(row: PreferenceRow, text: str, dialect: Dialect) -> list[dict[str, Any]]:
    """An answer as one assistant turn: the original's with the calls it made."""
    calls = list(row.original_calls) if text == row.original else []
    return [assistant(text, calls, dialect)]


def _with_tools(row: PreferenceRow, record: Record) -> Record:
    """TRL's ``tools`` column, on a row whose request offered tools."""
    return {**record, "tools": list(row.tools)} if row.tools else record


def _trl(row: PreferenceRow, chosen: str, rejected: str) -> Record:
    record = {
        "prompt": conversation(row.prompt, "trl"),
        "chosen": _answer(row, chosen, "trl"),
        "rejected": _answer(row, rejected, "trl"),
    }
    return _with_tools(row, record)


def _openai(row: PreferenceRow, chosen: str, rejected: str) -> Record:
    return {
        "input": {
            "messages": conversation(row.prompt, "openai"),
            "tools": list(row.tools),
            "parallel_tool_calls": True,
        },
        "preferred_output": _answer(row, chosen, "openai"),
        "non_preferred_output": _answer(row, rejected, "openai"),
    }


def _hh_turns(row: PreferenceRow) -> list[tuple[str, str]]:
    """Speaker turns, strictly alternating, as HH-RLHF parsers split on the speaker tags."""
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    for message in prompt_messages(row):
        role, content = message["role"], message["content"]
        if role in ("system", "developer"):
            system.append(content)
            continue
        tag = {"user": _HUMAN, "assistant": _ASSISTANT}.get(role)
        if tag is None:  # tool results have no speaker in this format
            continue
        if turns and turns[-1][0] == tag:
            turns[-1] = (tag, turns[-1][1] + "\n\n" + content)
        else:
            turns.append((tag, content))
    # The format has no system slot; the instructions still shaped the answer, so they are
    # kept where a human would have had to say them: at the start of the first Human turn.
    first_human = next((i for i, (tag, _) in enumerate(turns) if tag == _HUMAN), None)
    if first_human is None:
        turns.insert(0, (_HUMAN, ""))
        first_human = 0
    if system:
        head = "\n\n".join(system)
        text = turns[first_human][1]
        turns[first_human] = (_HUMAN, f"{head}\n\n{text}" if text else head)
    return turns


def hh_transcript(row: PreferenceRow, answer: str) -> str:
    turns = _hh_turns(row)
    if turns[-1][0] == _ASSISTANT:  # the answer continues a prefilled assistant turn
        turns[-1] = (_ASSISTANT, turns[-1][1] + "\n\n" + answer)
    else:
        turns.append((_ASSISTANT, answer))
    return "".join(tag + text for tag, text in turns)


def _hh(row: PreferenceRow, chosen: str, rejected: str) -> Record:
    return {"chosen": hh_transcript(row, chosen), "rejected": hh_transcript(row, rejected)}


def _kto(row: PreferenceRow) -> list[tuple[str, Record]]:
    out: list[tuple[str, Record]] = []
    prompt = conversation(row.prompt, "trl")

    def one(answer: str, label: bool) -> Record:
        record = {"prompt": prompt, "completion": _answer(row, answer, "trl"), "label": label}
        return _with_tools(row, record)

    if row.acceptable is not None:
        out.append((row.row_id, one(row.original, row.acceptable)))
    if row.preferred is not None and row.preferred != row.original:
        out.append((f"{row.row_id}:preferred", one(row.preferred, True)))
    return out


#: why an exchange with tools yields no HH-RLHF record
NO_TOOLS_IN_HH = "tool calls or tool results, which the hh format cannot carry"


def _tools_in(row: PreferenceRow) -> bool:
    return has_tools(row.prompt, list(row.original_calls))


_PAIRED_BUILDERS = {"trl": _trl, "openai": _openai, "hh": _hh}


def records(format: str, row: PreferenceRow) -> list[tuple[str, Record]]:
    """(row id, record) for each line this row contributes to ``format``; may be empty."""
    if format == "kto":
        return _kto(row)
    builder = _PAIRED_BUILDERS.get(format)
    if builder is None:
        raise ValueError(f"unknown export format {format!r}; expected one of {FORMATS}")
    answers = pair(row)
    if answers is None or (format == "hh" and _tools_in(row)):
        return []
    return [(row.row_id, builder(row, *answers))]


def why_skipped(format: str, row: PreferenceRow) -> str | None:
    """Why ``row`` yields no record in ``format``, or None when it yields at least one."""
    if format == "hh" and _tools_in(row):
        return NO_TOOLS_IN_HH
    if pair(row) is not None:
        return None
    if format == "kto":
        return None if row.acceptable is not None else "verdict unsure and no rewritten answer"
    if row.preferred is None:
        return "no preferred answer to pair with the original"
    return "preferred answer is the original, so there is no rejected side"
