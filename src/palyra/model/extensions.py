"""Wire fields the contract does not model, kept for the wire format they came in.

A client of one API may send fields Palyra has no neutral name for (a new OpenAI parameter, an
Anthropic message option). They travel in :class:`Extensions`, owned by the wire format that
parsed them: when the request goes to an upstream speaking that same format, its payload
builder writes them back exactly as sent; any other format cannot know what they mean, so a
request-level extension is refused there with a 400 naming the field (another candidate of the
owner's format may still take the request), and message- and tool-level ones are left out by rule
(they describe the owner's own bookkeeping). Answers carry the upstream's unmodelled fields the
same way, back to a client of the same API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from palyra.model.errors import FailureClass, PalyraError

WireFormat = Literal["openai_chat", "anthropic_messages", "openai_responses"]
OPENAI_CHAT: WireFormat = "openai_chat"
ANTHROPIC_MESSAGES: WireFormat = "anthropic_messages"
OPENAI_RESPONSES: WireFormat = "openai_responses"


class Extensions(BaseModel):
    """``fields`` as the ``owner`` format spelled them, in the order it sent them.

    ``mapped`` names fields whose meaning the contract carries too (Anthropic's
    ``output_config`` as the reasoning effort and response format): an upstream of the owner's
    format gets them as sent, other formats read the contract's fields and leave them out.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    owner: WireFormat
    fields: dict[str, Any]
    mapped: frozenset[str] = frozenset()

    def unmapped(self) -> Extensions | None:
        """The fields no other format can carry (None when every one is mapped)."""
        if not self.mapped:
            return self
        rest = {k: v for k, v in self.fields.items() if k not in self.mapped}
        return Extensions(owner=self.owner, fields=rest) if rest else None


def unknown_fields(
    data: Mapping[str, Any], known: frozenset[str], owner: WireFormat
) -> Extensions | None:
    """The keys of ``data`` outside ``known``, as ``owner``'s extensions (None when there are
    none: a set test, nothing built, for the usual body)."""
    if data.keys() <= known:
        return None
    return Extensions(owner=owner, fields={k: v for k, v in data.items() if k not in known})


def refuse_unmapped(extensions: Extensions, target: WireFormat) -> None:
    """Raise :func:`refuse_foreign` for the fields of another format that the contract does
    not also carry (its ``mapped`` ones are left out: the contract's fields stand for them)."""
    foreign = extensions.unmapped()
    if foreign is not None:
        raise refuse_foreign(foreign, target)


def refuse_foreign(extensions: Extensions, target: WireFormat, where: str = "") -> PalyraError:
    """The 400 for request fields an upstream of another format cannot carry."""
    names = ", ".join(f"{where}{name}" for name in extensions.fields)
    first = next(iter(extensions.fields))
    return PalyraError.of(
        FailureClass.UNSUPPORTED_CAPABILITY,
        f"{names}: not a field Palyra can carry from the {extensions.owner} API to a model "
        f"served by the {target} API; remove it, or route to a model of the {extensions.owner} "
        "API, which receives it as sent",
        param=f"{where}{first}",
    )
