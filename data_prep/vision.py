"""The image pixel range shared by data preparation, training and evaluation.

``MIN_PIXELS``/``MAX_PIXELS`` are the vision processor's ``min_pixels``/``max_pixels`` (the paper: 256*32*32 and
1280*32*32; 32 = patch 16 x spatial merge 2, so one visual token per 32x32 pixels after merging). The ZPPO-77K
builder stores every image inside this range; training and the evaluation converters give the same numbers to
the processor, so an image costs the same number of visual tokens everywhere.

``resized_hw(height, width)`` is the size an image is stored at: unchanged when its pixel count is already in
range, otherwise scaled (aspect ratio kept) to just inside the range. Pure integer/float arithmetic, no PIL.
"""

from __future__ import annotations

import math

IMAGE_FACTOR = 32  # pixels per visual token side after the 2x2 merge (patch 16 x merge 2)
MIN_PIXELS = 256 * IMAGE_FACTOR * IMAGE_FACTOR  # 262,144 pixels = 256 visual tokens
MAX_PIXELS = 1280 * IMAGE_FACTOR * IMAGE_FACTOR  # 1,310,720 pixels = 1,280 visual tokens
# qwen_vl_utils.smart_resize refuses images whose long side is more than 200x the short side.
MAX_ASPECT_RATIO = 200


def aspect_ratio(height: int, width: int) -> float:
    """Long side over short side (>= 1)."""
    return max(height, width) / min(height, width)


def resized_hw(height: int, width: int, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(height, width) inside ``[min_pixels, max_pixels]`` pixels, aspect ratio kept.

    An image already in range is returned unchanged. A larger one is scaled down (sides rounded down, so the
    product never exceeds ``max_pixels``); a smaller one is scaled up (sides rounded up, so the product reaches
    ``min_pixels``). Sides are at least 1. For aspect ratios up to ``MAX_ASPECT_RATIO`` the result is always in
    range; the aspect ratio changes only by the rounding of each side (less than one pixel per side).
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    if not 0 < min_pixels <= max_pixels:
        raise ValueError(f"need 0 < min_pixels <= max_pixels, got {min_pixels}, {max_pixels}")
    pixels = height * width
    if min_pixels <= pixels <= max_pixels:
        return height, width
    if pixels > max_pixels:
        scale = math.sqrt(max_pixels / pixels)
        new_h, new_w = max(1, math.floor(height * scale)), max(1, math.floor(width * scale))
        # Float error (or a side clamped to 1) can leave the product a little over: trim the longer side.
        while new_h * new_w > max_pixels:
            if new_h >= new_w:
                new_h = max(1, max_pixels // new_w)
            else:
                new_w = max(1, max_pixels // new_h)
        return new_h, new_w
    scale = math.sqrt(min_pixels / pixels)
    new_h, new_w = math.ceil(height * scale), math.ceil(width * scale)
    while new_h * new_w < min_pixels:  # float error only
        if new_h <= new_w:
            new_h += 1
        else:
            new_w += 1
    return new_h, new_w
