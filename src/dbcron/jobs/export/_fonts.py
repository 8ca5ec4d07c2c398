"""Fonts for every script in the PDF: a fallback chain, right-to-left order, shaping.

DejaVu Sans Condensed (bundled) covers Latin, Greek and Cyrillic. Other scripts
come from fonts of the system's packages, found at run time (Debian names:
fonts-noto-core for Devanagari, Arabic, Hebrew and most other scripts,
fonts-droid-fallback for Chinese and Japanese, fonts-nanum for Korean;
fonts-noto-cjk is OpenType/CFF, which reportlab cannot embed). A character takes the first font
of the chain that has it; fonts load lazily, so a Latin-only report never reads
the others.

Right-to-left text is put in visual order by a reduced form of the Unicode
bidi algorithm (one embedding level per direction: strong letters decide, runs
of neutrals between two letters of one direction take it, digits stay
left-to-right), and scripts whose letters join or reorder (Arabic, Hebrew
marks, Devanagari and the other Indic scripts) are shaped by HarfBuzz through
reportlab, which also emits those runs in visual order.

A character no font has is drawn by the first font (a box) and named once in
the run's log by the writer, so a missing font package is never silent.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import ShapedStr, TTFont, shapeStr

# Fallback files by preference; a name may match in any of _FONT_DIRS.
_FALLBACKS = (
    "NotoSansDevanagari-{w}.ttf",
    "NotoSansArabic-{w}.ttf",
    "NotoSansHebrew-{w}.ttf",
    "NotoSansBengali-{w}.ttf",
    "NotoSansTamil-{w}.ttf",
    "NotoSansTelugu-{w}.ttf",
    "NotoSansGujarati-{w}.ttf",
    "NotoSansGurmukhi-{w}.ttf",
    "NotoSansKannada-{w}.ttf",
    "NotoSansMalayalam-{w}.ttf",
    "NotoSansThai-{w}.ttf",
    "NotoSansArmenian-{w}.ttf",
    "NotoSansGeorgian-{w}.ttf",
    "NotoSansEthiopic-{w}.ttf",
    "DroidSansFallbackFull.ttf",
    "NanumGothic{bb}.ttf",
    "NotoSans-{w}.ttf",
    "DejaVuSans{b}.ttf",
    "NotoSansSymbols2-Regular.ttf",
)
_FONT_DIRS = (
    Path("/usr/share/fonts"),
    Path("/usr/local/share/fonts"),
    Path.home() / ".local/share/fonts",
)
# Scripts HarfBuzz must shape: Hebrew to Arabic blocks, Indic, Thai/Lao, Myanmar,
# Khmer, and the Hebrew/Arabic presentation forms.
_SHAPED_RANGES = (
    (0x0590, 0x08FF),
    (0x0900, 0x0DFF),
    (0x0E00, 0x0EFF),
    (0x1000, 0x109F),
    (0x1780, 0x17FF),
    (0xFB1D, 0xFDFF),
    (0xFE70, 0xFEFF),
)
_RTL = frozenset({"R", "AL"})
_STRONG_LTR = frozenset({"L"})
_NUMBER = frozenset({"EN", "AN"})
_CACHE_LIMIT = 4096


@dataclass(frozen=True)
class Run:
    """Text in one font, drawn left to right as given (already in visual order)."""

    font: str
    text: str  # a ShapedStr when HarfBuzz shaped it
    width: float


def _font_files(bold: bool) -> Iterator[Path]:
    weight = "Bold" if bold else "Regular"
    suffix = "-Bold" if bold else ""
    index: dict[str, Path] = {}
    for root in _FONT_DIRS:
        if root.is_dir():
            for dirpath, _dirs, files in os.walk(root):
                for name in files:
                    index.setdefault(name, Path(dirpath) / name)
    for pattern in _FALLBACKS:
        name = pattern.format(w=weight, b=suffix, bb="Bold" if bold else "")
        path = index.get(name) or index.get(pattern.format(w="Regular", b="", bb=""))
        if path is not None:
            yield path


class FontChain:
    """The fonts one text style tries, in order, with the text split into runs."""

    def __init__(self, name: str, bundled: str, bold: bool) -> None:
        self._prefix = name
        self._bold = bold
        self._names: list[str] = []
        self._cmaps: list[dict[int, int]] = []
        self._pending: Iterator[Path] | None = None
        self._by_char: dict[str, int] = {}
        self._runs: dict[tuple[str, float], list[Run]] = {}
        self._simple: dict[str, bool] = {}  # a report repeats its texts (cities, names)
        self.missing: set[str] = set()
        path = resources.files("dbcron") / "fonts" / bundled
        with resources.as_file(path) as font_path:
            self._add(name, str(font_path))

    @property
    def primary(self) -> str:
        return self._names[0]

    def font_names(self) -> list[str]:
        """The fonts loaded so far (the chain loads more only when a character needs one)."""
        return list(self._names)

    def _add(self, name: str, path: str) -> None:
        if name not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont(name, path, shapable=True))
        font: Any = pdfmetrics.getFont(name)
        self._names.append(name)
        self._cmaps.append(font.face.charToGlyph)

    def _font_of(self, ch: str) -> int:
        found = self._by_char.get(ch)
        if found is not None:
            return found
        code = ord(ch)
        index = next((i for i, cmap in enumerate(self._cmaps) if code in cmap), -1)
        if index < 0:
            if self._pending is None:
                self._pending = _font_files(self._bold)
            for path in self._pending:
                self._add(f"{self._prefix}-{path.stem}", str(path))
                if code in self._cmaps[-1]:
                    index = len(self._cmaps) - 1
                    break
        if index < 0:
            if unicodedata.category(ch)[0] not in "ZC":
                self.missing.add(ch)
            index = 0
        self._by_char[ch] = index
        return index

    def simple(self, text: str) -> bool:
        """True when the first font draws ``text`` as it is, with no shaping or reordering."""
        if text.isascii():
            return True
        known = self._simple.get(text)
        if known is None:
            if len(self._simple) >= _CACHE_LIMIT:
                self._simple.clear()
            known = self._simple[text] = all(
                self._font_of(ch) == 0 and not _needs_shaping(ch) for ch in text
            )
        return known

    def width(self, text: str, size: float) -> float:
        if self.simple(text):
            return float(pdfmetrics.stringWidth(text, self.primary, size))
        return sum(run.width for run in self.runs(text, size))

    def runs(self, text: str, size: float) -> list[Run]:
        """``text`` as runs of one font each, in visual (left-to-right) order."""
        key = (text, size)
        cached = self._runs.get(key)
        if cached is not None:
            return cached
        if len(self._runs) >= _CACHE_LIMIT:
            self._runs.clear()
        runs = [self._run(font, chunk, rtl, size) for font, chunk, rtl in self._visual(text)]
        self._runs[key] = runs
        return runs

    def _run(self, font: int, chunk: str, rtl: bool, size: float) -> Run:
        name = self._names[font]
        if any(map(_needs_shaping, chunk)):
            shaped = shapeStr(chunk, name, size)
            if isinstance(shaped, ShapedStr):
                advance = sum(d.x_advance for d in shaped.__shapeData__) * size / 1000
                return Run(name, shaped, advance)
        if rtl:
            chunk = chunk[::-1]
        return Run(name, chunk, float(pdfmetrics.stringWidth(chunk, name, size)))

    def _visual(self, text: str) -> list[tuple[int, str, bool]]:
        """(font index, logical text, right-to-left) segments in visual order."""
        classes = [unicodedata.bidirectional(ch) for ch in text]
        strong = next((c for c in classes if c in _RTL or c in _STRONG_LTR), "L")
        base_rtl = strong in _RTL
        dirs = _resolve(classes, base_rtl)
        segments: list[tuple[int, str, bool]] = []
        for ch, rtl in zip(text, dirs, strict=True):
            font = self._font_of(ch)
            if segments and segments[-1][0] == font and segments[-1][2] == rtl:
                segments[-1] = (font, segments[-1][1] + ch, rtl)
            else:
                segments.append((font, ch, rtl))
        if base_rtl:
            return segments[::-1]
        ordered: list[tuple[int, str, bool]] = []
        group: list[tuple[int, str, bool]] = []
        for segment in segments:
            if segment[2]:
                group.append(segment)
                continue
            ordered += [*group[::-1], segment]
            group = []
        return ordered + group[::-1]


def _needs_shaping(ch: str) -> bool:
    code = ord(ch)
    return code >= 0x0590 and any(lo <= code <= hi for lo, hi in _SHAPED_RANGES)


def _resolve(classes: list[str], base_rtl: bool) -> list[bool]:
    """Per character: drawn right to left? Neutrals between two letters of one
    direction take it, others the base direction; marks follow their letter;
    digits are always left to right."""
    dirs: list[bool | None] = []
    for cls in classes:
        if cls in _RTL:
            dirs.append(True)
        elif cls in _STRONG_LTR or cls in _NUMBER:
            dirs.append(False)
        elif cls == "NSM" and dirs:
            dirs.append(dirs[-1])
        else:
            dirs.append(None)
    resolved: list[bool] = []
    for i, d in enumerate(dirs):
        if d is not None:
            resolved.append(d)
            continue
        before = next((x for x in reversed(dirs[:i]) if x is not None), base_rtl)
        after = next((x for x in dirs[i + 1 :] if x is not None), base_rtl)
        resolved.append(before if before == after else base_rtl)
    return resolved
