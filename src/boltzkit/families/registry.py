"""The registry of model families, keyed by ``model.type``."""

from __future__ import annotations

from .contract import Family
from .task import Task

_FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add ``family`` (its ``name`` must be new, and its section's ``type`` a literal of it)."""
    if family.name in _FAMILIES and _FAMILIES[family.name] is not family:
        raise ValueError(f"model family {family.name!r} is already registered")
    default_type = family.section.model_fields["type"].default
    if default_type != family.name:
        raise ValueError(f"family {family.name!r}: its section's type must default to {family.name!r}, "
                         f"got {default_type!r}")
    if family.capabilities.sample and family.sample is None:
        raise ValueError(f"family {family.name!r} declares capabilities.sample but gives no sample()")
    if family.capabilities.evaluate and family.task.evaluate is Task.evaluate:
        raise ValueError(f"family {family.name!r} declares capabilities.evaluate but its task "
                         "has no evaluate()")
    if family.capabilities.lr_find and (family.task.proxy_loss is Task.proxy_loss
                                        or family.task.probe is Task.probe):
        raise ValueError(f"family {family.name!r} declares capabilities.lr_find but its task has no "
                         "proxy_loss() and probe() for the range test")
    bound = family.task.__dict__.get("family")
    if bound is not None and bound.name != family.name:
        raise ValueError(f"family {family.name!r}: task {family.task.__name__} already serves {bound.name!r}")
    family.task.family = family  # the task reads its family's declarations (metric directions)
    _FAMILIES[family.name] = family
    return family


def unregister(name: str) -> None:
    """Remove a family (tests that register a toy family clean up with it)."""
    _FAMILIES.pop(name, None)


def family_names() -> list[str]:
    return list(_FAMILIES)


def get_family(name: str) -> Family:
    """The family registered as ``name``; ``KeyError`` naming the accepted ones otherwise."""
    try:
        return _FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown model.type {name!r}; accepted: {', '.join(_FAMILIES)}") from None
