"""Which model a ``classifier`` rule names: a shipped one, an operator's own, or a model file.

A spec is one of:

- a shipped name (``injection``, ``human_likeness``, ``tool_injection``): the weights in the
  package's ``gateway/detectors/models/`` folder, read through ``importlib.resources`` so an
  installed wheel finds them as a source checkout does;
- ``package.module:attribute``: an operator's model, importable by the gateway's Python; the
  attribute is a ``TextModel`` instance or a zero-argument factory (a class, a function) that
  returns one;
- a path to a model file in the linear format (``gateway detectors train`` writes them);
  a relative path is taken from the gateway's working directory.

Each spec is loaded once per process: models are read-only once loaded, and a policy reload
or a second context naming the same model must not load its weights again.
"""

from __future__ import annotations

import functools
import importlib
import importlib.resources
import re
from pathlib import Path

from gateway.detectors.model import TextModel

#: the models that ship with the gateway (their weights and cards are in ``models/``)
SHIPPED = ("injection", "human_likeness", "tool_injection")
_IMPORT_SPEC = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
_CARD_SUFFIX = ".md"


class ModelSpecError(ValueError):
    """A spec names no model that can be loaded; the message says what was tried."""


def _models_folder() -> Path:
    folder = importlib.resources.files("gateway.detectors").joinpath("models")
    # The package is installed as files (a wheel or a checkout), never from a zip.
    return Path(str(folder))


def shipped_file(name: str) -> Path | None:
    """The weights file of a shipped model: ``models/<name>.<suffix>`` that is not its card."""
    folder = _models_folder()
    if not folder.is_dir():
        return None
    for path in sorted(folder.iterdir()):
        stem = path.name.split(".", 1)[0]
        if stem == name and path.name != stem and not path.name.endswith(_CARD_SUFFIX):
            return path
    return None


def known_models() -> str:
    return ", ".join(SHIPPED)


@functools.cache
def load_model(spec: str) -> TextModel:
    """The model a spec names, loaded once per process; ``ModelSpecError`` if there is none."""
    spec = spec.strip()
    if spec in SHIPPED:
        path = shipped_file(spec)
        if path is None:
            raise ModelSpecError(
                f"shipped model {spec!r} has no weights in {_models_folder()} "
                "(train them with `gateway detectors train`)"
            )
        return _linear(path)
    if _IMPORT_SPEC.fullmatch(spec):
        return _imported(spec)
    path = Path(spec).expanduser()
    if path.is_file():
        return _linear(path)
    raise ModelSpecError(
        f"unknown model {spec!r}: not a shipped model ({known_models()}), not an importable "
        "package.module:attribute, and no model file at that path"
    )


def _linear(path: Path) -> TextModel:
    from gateway.detectors.linear import load_linear  # numpy weights: only when named

    try:
        return load_linear(path)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelSpecError(f"model file {path} cannot be loaded: {exc}") from exc


def _imported(spec: str) -> TextModel:
    module_name, attribute = spec.split(":", 1)
    try:
        target: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelSpecError(f"model {spec!r}: cannot import {module_name}: {exc}") from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise ModelSpecError(f"model {spec!r}: {module_name} has no {attribute}") from exc
    # A class has ``info`` and ``score`` attributes too: call it rather than take it as a model.
    if isinstance(target, type) or not isinstance(target, TextModel):
        if not callable(target):
            raise ModelSpecError(f"model {spec!r} is neither a TextModel nor a factory of one")
        target = target()
    if not isinstance(target, TextModel):
        raise ModelSpecError(
            f"model {spec!r} gave a {type(target).__name__}, which has no info and score "
            "(the TextModel interface in gateway.detectors.model)"
        )
    return target
