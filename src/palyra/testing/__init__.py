"""A fake upstream that speaks OpenAI and Anthropic over real HTTP on loopback.

Used by Palyra's tests and benchmarks, and by users who want to try Palyra without keys::

    with FakeUpstream(stream_chunk_tokens=2) as fake:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="any")
        fake.faults.push(Fault(FaultKind.RATE_LIMIT, retry_after_s=2))
        ...
        assert fake.requests[-1].body["model"] == "gpt-4o-mini"

Endpoints: ``POST /v1/chat/completions`` (whole and SSE), ``/v1/embeddings``,
``/v1/audio/transcriptions``, ``/v1/responses`` (whole and SSE), ``/v1/messages`` (whole and SSE), ``/v1/messages/count_tokens``,
``GET /v1/models`` (Anthropic shape when the request has ``anthropic-version``). Replies follow
the rules in :mod:`palyra.testing.conversation`; in short, ``call <tool>`` in the last user
message makes the model call that offered tool.
"""

from palyra.testing.conversation import ScriptedToolCall
from palyra.testing.fake import FakeUpstream
from palyra.testing.faults import Fault, FaultKind, FaultQueue
from palyra.testing.recording import RecordedRequest
from palyra.testing.settings import FakeSettings

__all__ = [
    "FakeSettings",
    "FakeUpstream",
    "Fault",
    "FaultKind",
    "FaultQueue",
    "RecordedRequest",
    "ScriptedToolCall",
]
