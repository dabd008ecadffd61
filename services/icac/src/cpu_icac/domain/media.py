"""Is this upload an image or a video? The platform holds hashes and metadata only.

Import files and hash sets are text (JSON, CSV, XML). A body that starts with the signature of
an image or video container is refused at once, with the kind named, before any parser sees it:
clearer than a parse error, and no copy of the bytes is kept anywhere.
"""

from __future__ import annotations

from typing import Final

from cpu_icac.domain.tip_report import text_carries_file

# (offset, signature, kind)
_SIGNATURES: Final[tuple[tuple[int, bytes, str], ...]] = (
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"BM", "image/bmp"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (0, b"\x00\x00\x01\x00", "image/x-icon"),
    (0, b"\xff\x0a", "image/jxl"),
    (0, b"\x00\x00\x00\x0cJXL ", "image/jxl"),
    (0, b"\x1aE\xdf\xa3", "video/webm"),  # Matroska / WebM
    (0, b"FLV", "video/x-flv"),
    (0, b"\x00\x00\x01\xba", "video/mpeg"),
    (0, b"\x00\x00\x01\xb3", "video/mpeg"),
    (0, b"0&\xb2u\x8ef\xcf\x11", "video/x-ms-asf"),
    (4, b"ftyp", "video/mp4"),  # MP4, MOV, 3GP, HEIC/AVIF (ISO base media)
)
_RIFF_KINDS: Final = {b"WEBP": "image/webp", b"AVI ": "video/x-msvideo"}


def sniff_media(head: bytes) -> str | None:
    """The media type of an image or video whose signature ``head`` starts with, else None.
    (A BOM or leading blanks are not skipped: text formats never start with a signature.)"""
    for offset, signature, kind in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            if signature == b"BM" and not _plausible_bmp(head):
                continue
            return kind
    if head[:4] == b"RIFF" and head[8:12] in _RIFF_KINDS:
        return _RIFF_KINDS[head[8:12]]
    if head[:4] == b"\x00\x00\x00\x0c" and head[4:8] == b"jP  ":
        return "image/jp2"
    return None


def _plausible_bmp(head: bytes) -> bool:
    # "BM" could start a CSV header; a bitmap has its reserved bytes zero and a sane offset.
    return len(head) >= 14 and head[6:10] == b"\x00\x00\x00\x00"


MEDIA_REFUSED: Final = "image and video content is refused: send only hashes and metadata"


def may_carry_file(data: bytes) -> bool:
    """True when bytes received as a report could hold a file: an image or video signature,
    anything that is not UTF-8 text, or text embedding a file (a ``data:`` URI, a long run of
    base64 or hex). Such bytes are never kept, not even encrypted: only their digest."""
    if sniff_media(data[:64]) is not None:
        return True
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return text_carries_file(text)
