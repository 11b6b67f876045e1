"""PDF through PDFium: the text layer of every page plus the document information dictionary."""

from __future__ import annotations

from copytrail.ingest.readers import Extraction, Unreadable


def read_pdf(data: bytes) -> Extraction:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as e:
        msg = str(e)
        if "password" in msg.lower():
            raise Unreadable("encrypted PDF (password required)") from e
        raise Unreadable(f"corrupt or unsupported PDF: {msg}") from e
    try:
        info = {k: v for k, v in pdf.get_metadata_dict(skip_empty=True).items()}
        pages = []
        for i in range(len(pdf)):
            page = pdf[i]
            textpage = page.get_textpage()
            pages.append(textpage.get_text_bounded())
            textpage.close()
            page.close()
    except pdfium.PdfiumError as e:
        raise Unreadable(f"PDF text extraction failed: {e}") from e
    finally:
        pdf.close()
    text = "\n\f".join(pages)
    if not text.strip() and pages:
        raise Unreadable(f"PDF has {len(pages)} pages but no text layer (a scan that needs OCR)")
    authors = [info["Author"]] if info.get("Author") else []
    return Extraction(
        text=text,
        media_type="application/pdf",
        title=info.get("Title") or None,
        authors=authors,
        extra={"pages": len(pages), "pdf_info": info},
    )
