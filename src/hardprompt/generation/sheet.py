"""Contact sheets: the target next to the generated images, with the prompt as caption."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from ..errors import HardpromptError

BACKGROUND = (255, 255, 255)
TEXT_COLOR = (20, 20, 20)
MARGIN = 8
LINE_HEIGHT = 14


def _fit(image: Image.Image, cell: int) -> Image.Image:
    """`image` scaled to fit a square `cell`, centred on white."""
    image = image.convert("RGB")
    scale = cell / max(image.size)
    resized = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS)
    canvas = Image.new("RGB", (cell, cell), BACKGROUND)
    canvas.paste(resized, ((cell - resized.width) // 2, (cell - resized.height) // 2))
    return canvas


def contact_sheet(
    images: Sequence[Image.Image],
    caption: str,
    target: Image.Image | None = None,
    cell: int = 256,
) -> Image.Image:
    """One row: the target (if given, labelled "target"), then `images`; `caption` wrapped below.

    Every picture is scaled to a `cell`×`cell` square so targets and generations of any size line up.
    """
    if not images:
        raise HardpromptError("no images for the contact sheet")
    cells = ([target] if target is not None else []) + list(images)
    width = MARGIN + len(cells) * (cell + MARGIN)
    font = ImageFont.load_default()
    if not isinstance(font, ImageFont.FreeTypeFont):  # Pillow without FreeType: a Latin-1 bitmap font
        caption = caption.encode("latin-1", "replace").decode("latin-1")
    characters_per_line = max(20, width // 7)
    lines = textwrap.wrap(caption, characters_per_line) or [""]
    label_height = LINE_HEIGHT if target is not None else 0
    height = MARGIN + label_height + cell + MARGIN + len(lines) * LINE_HEIGHT + MARGIN
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    top = MARGIN + label_height
    for column, image in enumerate(cells):
        sheet.paste(_fit(image, cell), (MARGIN + column * (cell + MARGIN), top))
    if target is not None:
        draw.text((MARGIN, MARGIN), "target", fill=TEXT_COLOR, font=font)
    for row, line in enumerate(lines):
        draw.text((MARGIN, top + cell + MARGIN + row * LINE_HEIGHT), line, fill=TEXT_COLOR, font=font)
    return sheet


def stack_sheets(sheets: Sequence[Image.Image]) -> Image.Image:
    """Sheets one below the other (left-aligned, white background)."""
    if not sheets:
        raise HardpromptError("no contact sheets to stack")
    width = max(sheet.width for sheet in sheets)
    stacked = Image.new("RGB", (width, sum(sheet.height for sheet in sheets)), BACKGROUND)
    top = 0
    for sheet in sheets:
        stacked.paste(sheet, (0, top))
        top += sheet.height
    return stacked
