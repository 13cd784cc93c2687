"""One preference row in, the records of one training format out.

The shapes are the literal ones each trainer reads (TRL conversational DPO, TRL unpaired KTO,
OpenAI preference fine-tuning, Anthropic HH-RLHF), with nothing added: trainers and validators
reject or silently mis-read unknown keys, so provenance lives in a sidecar aligned by line.
"""

from __future__ import annotations

from typing import Any

from gateway.export.rows import PreferenceRow

FORMATS = ("trl", "openai", "hh", "kto")
PAIRED = ("trl", "openai", "hh")

Record = dict[str, Any]
Message = dict[str, str]

_HUMAN = "\n\nHuman: "
_ASSISTANT = "\n\nAssistant: "


def text_of(content: Any) -> str:
    """A message's content as one string; non-text parts (images, audio) cannot be carried."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
        return "\n".join(texts)
    return ""


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


def _answer(text: str) -> list[Message]:
    return [{"role": "assistant", "content": text}]


def _trl(row: PreferenceRow, chosen: str, rejected: str) -> Record:
    return {
        "prompt": prompt_messages(row),
        "chosen": _answer(chosen),
        "rejected": _answer(rejected),
    }


def _openai(row: PreferenceRow, chosen: str, rejected: str) -> Record:
    return {
        "input": {
            "messages": prompt_messages(row),
            "tools": list(row.tools),
            "parallel_tool_calls": True,
        },
        "preferred_output": _answer(chosen),
        "non_preferred_output": _answer(rejected),
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
    prompt = prompt_messages(row)
    if row.acceptable is not None:
        out.append(
            (
                row.row_id,
                {"prompt": prompt, "completion": _answer(row.original), "label": row.acceptable},
            )
        )
    if row.preferred is not None and row.preferred != row.original:
        out.append(
            (
                f"{row.row_id}:preferred",
                {"prompt": prompt, "completion": _answer(row.preferred), "label": True},
            )
        )
    return out


_PAIRED_BUILDERS = {"trl": _trl, "openai": _openai, "hh": _hh}


def records(format: str, row: PreferenceRow) -> list[tuple[str, Record]]:
    """(row id, record) for each line this row contributes to ``format``; may be empty."""
    if format == "kto":
        return _kto(row)
    builder = _PAIRED_BUILDERS.get(format)
    if builder is None:
        raise ValueError(f"unknown export format {format!r}; expected one of {FORMATS}")
    answers = pair(row)
    if answers is None:
        return []
    return [(row.row_id, builder(row, *answers))]


def why_skipped(format: str, row: PreferenceRow) -> str | None:
    """Why ``row`` yields no record in ``format``, or None when it yields at least one."""
    if pair(row) is not None:
        return None
    if format == "kto":
        return None if row.acceptable is not None else "verdict unsure and no rewritten answer"
    if row.preferred is None:
        return "no preferred answer to pair with the original"
    return "preferred answer is the original, so there is no rejected side"
