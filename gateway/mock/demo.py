"""The built-in demo backend's script: what a newcomer's first requests are answered with."""

from __future__ import annotations

from gateway.mock.script import Script

#: Long enough to be seen streaming (hundreds of characters, a word every 20 ms), and it says
#: what just happened, so the first answer is also the first piece of documentation.
DEMO_ECHO = (
    "Hello! This is the Situate demo backend, a scripted stand-in for a model. You said: {said}"
    "\n\nIt answers every request with this text, streamed a word at a time, so you can watch"
    " the gateway at work. Your message went through the input rules of your key's deployment"
    " context before it reached this backend, and this answer goes through the context's output"
    " rules while it streams: the gateway holds back the last few dozen characters until they"
    " have been checked (the policy's stream.hold_back), then lets them through. Every exchange"
    " is recorded with the decision and the policy revision that made it; `gateway exchanges"
    " list` shows them. To talk to a real model, write a gateway config file that points at an"
    " OpenAI-compatible backend and pass it to `gateway serve --config`."
)
DEMO_TOKEN_DELAY = 0.02


def demo_script() -> Script:
    return Script(echo=DEMO_ECHO, token_delay=DEMO_TOKEN_DELAY)
