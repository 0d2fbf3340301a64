"""What an image costs in input tokens, by the formulas OpenAI and Anthropic publish.

Pure arithmetic on pixel sizes; an unknown size costs the largest amount the formula can give,
so a context check errs on the side of refusing rather than overflowing upstream.
"""

from __future__ import annotations

import math

OPENAI_LOW_DETAIL_TOKENS = 85
OPENAI_BASE_TOKENS = 85
OPENAI_TOKENS_PER_TILE = 170
OPENAI_TILE_PX = 512
OPENAI_MAX_SIDE_PX = 2048
OPENAI_SHORT_SIDE_PX = 768
# Largest high-detail cost: a 768x2048 image is 2x4 tiles -> 8 * 170 + 85.
OPENAI_UNKNOWN_SIZE_TOKENS = 1445

ANTHROPIC_PIXELS_PER_TOKEN = 750
ANTHROPIC_MAX_LONG_EDGE_PX = 1568
ANTHROPIC_MAX_IMAGE_TOKENS = 1600


def openai_image_tokens(width: int | None, height: int | None, detail: str | None) -> int:
    """OpenAI tile formula: ``low`` is 85; ``high``/``auto`` fit 2048x2048, shortest side to 768,
    then 170 per 512px tile plus 85. ``auto`` is costed as ``high`` (the upper bound)."""
    if detail == "low":
        return OPENAI_LOW_DETAIL_TOKENS
    if width is None or height is None:
        return OPENAI_UNKNOWN_SIZE_TOKENS
    w, h = float(width), float(height)
    fit = min(1.0, OPENAI_MAX_SIDE_PX / max(w, h))
    w, h = w * fit, h * fit
    shrink = min(1.0, OPENAI_SHORT_SIDE_PX / min(w, h))
    w, h = round(w * shrink), round(h * shrink)
    tiles = math.ceil(w / OPENAI_TILE_PX) * math.ceil(h / OPENAI_TILE_PX)
    return OPENAI_TOKENS_PER_TILE * tiles + OPENAI_BASE_TOKENS


def anthropic_image_tokens(width: int | None, height: int | None) -> int:
    """Anthropic: ``width * height / 750`` after the long edge is scaled to at most 1568 px,
    capped at about 1600 tokens (the size Anthropic scales larger images down to)."""
    if width is None or height is None:
        return ANTHROPIC_MAX_IMAGE_TOKENS
    scale = min(1.0, ANTHROPIC_MAX_LONG_EDGE_PX / max(width, height))
    w, h = round(width * scale), round(height * scale)
    return min(math.ceil(w * h / ANTHROPIC_PIXELS_PER_TOKEN), ANTHROPIC_MAX_IMAGE_TOKENS)
