"""A reportlab canvas whose pages go to disk as they are finished.

reportlab's ``PDFDocument`` keeps every page object and stream until ``save()``,
then formats the whole file in memory: memory grows with the report. Here each
page and its content stream are formatted and written at ``showPage`` and only
their object numbers and file offsets are kept; the objects that must wait for
the end (fonts, whose subsets grow with the text; the page tree; the "total
pages" form) are written by ``save()``, followed by the cross-reference table.

A form may be referenced by pages before it is drawn (``reserve_form``): its
name gets an object number at once and the real form takes that number when
``endForm`` defines it.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from reportlab.pdfbase import pdfdoc
from reportlab.pdfgen.canvas import Canvas


class _StreamingDocument(pdfdoc.PDFDocument):  # type: ignore[misc]
    def __init__(self, out: BinaryIO, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._out = out
        self._offset = 0
        self._written: set[str] = set()
        self._reserved: set[str] = set()
        self._emit(pdfdoc.PDFFile(self._pdfVersion).format(self))

    def reserve(self, internal_name: str) -> None:
        self.Reference(pdfdoc.PDFDictionary({}), internal_name)
        self._reserved.add(internal_name)

    def addForm(self, name: str, form: Any) -> None:
        internal = pdfdoc.xObjectName(name)
        if internal in self._reserved:
            self._reserved.discard(internal)
            form.__InternalName__ = internal
            self.idToObject[internal] = form
            self.inObject = None
            return
        super().addForm(name, form)

    def addPage(self, page: Any) -> None:
        name = self.thisPageName()
        first_new = self.objectcounter + 1
        super().addPage(page)
        self._write_object(name)  # registers the page's content stream as a new object
        self.Pages.pages[-1] = pdfdoc.PDFObjectReference(name)
        for number in range(first_new, self.objectcounter + 1):
            oid = self.numberToId[number]
            if isinstance(self.idToObject[oid], pdfdoc.PDFStream) and oid not in self._written:
                self._write_object(oid)

    def SaveToFile(self, filename: object, canvas: Canvas) -> None:
        self.GetPDFData(canvas)

    def format(self) -> bytes:
        """Write what is left, then the xref and the trailer (called by save())."""
        self.encrypt.prepare(self)
        self.Reference(self.Catalog)
        self.Reference(self.info)
        number = 1
        while number in self.numberToId:  # formatting may register further objects
            oid = self.numberToId[number]
            if oid not in self._written:
                self._write_object(oid)
            number += 1
        ids = [self.numberToId[n] for n in range(1, number)]
        xref = pdfdoc.PDFCrossReferenceTable()
        xref.addsection(0, ids)
        xref_offset = self._offset
        self._emit(xref.format(self))
        trailer = pdfdoc.PDFTrailer(
            startxref=xref_offset,
            Size=len(ids) + 1,
            Root=self.Reference(self.Catalog),
            Info=self.Reference(self.info),
            ID=self.ID(),
        )
        self._emit(trailer.format(self))
        return b""

    def _write_object(self, oid: str) -> None:
        data = pdfdoc.PDFIndirectObject(oid, self.idToObject[oid]).format(self)
        self.idToOffset[oid] = self._offset
        self._emit(data)
        self._written.add(oid)
        self.idToObject[oid] = None  # free it; the key stays for name lookups

    def _emit(self, data: bytes) -> None:
        self._out.write(data)
        self._offset += len(data)


class StreamingCanvas(Canvas):  # type: ignore[misc]
    """A Canvas writing to ``out`` page by page; ``save()`` finishes the file."""

    def __init__(self, out: BinaryIO, pagesize: tuple[float, float]) -> None:
        super().__init__(None, pagesize=pagesize, pageCompression=1)
        self._doc = _StreamingDocument(
            out, compression=1, invariant=0, pdfVersion=pdfdoc.PDF_VERSION_DEFAULT
        )
        # The preamble names the initial font: register it in the document we use.
        self._make_preamble()

    def reserve_form(self, name: str) -> None:
        """Let pages use form ``name`` (doForm) before beginForm/endForm define it."""
        self._doc.reserve(pdfdoc.xObjectName(name))
