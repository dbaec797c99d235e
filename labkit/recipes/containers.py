"""Where image files keep recipes, and the bytes of each place: PNG text chunks, EXIF UserComment (JPEG/WebP), XMP.

| file      | A1111 infotext                             | labkit JSON                | XMP (AI-made marker)          |
|-----------|--------------------------------------------|----------------------------|-------------------------------|
| PNG       | tEXt/iTXt `parameters`                     | tEXt `labkit`              | iTXt `XML:com.adobe.xmp`      |
| JPEG/WebP | EXIF UserComment, "UNICODE\\0" + UTF-16BE   | `labkit:recipe` in the XMP | APP1 segment / `XMP ` chunk   |

Writing: `image_options` gives Pillow's save options for a format. Reading: `image_chunks` gives {name: text} of
everything in an image that may hold a recipe.
"""

import re
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr, unescape

from ..errors import BadInput, LabkitError, UnsupportedFile

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}  # file suffix -> Pillow format
ENCODER_OPTIONS = {"PNG": {}, "JPEG": {"quality": 95}, "WEBP": {"quality": 95}}
RGB_ONLY = frozenset({"JPEG"})  # formats without an alpha channel
AI_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
LABKIT_NS = "urn:labkit:xmp:1/"
XMP_LIMIT = 60000  # bytes: a JPEG APP1 segment holds at most 65502; the recipe leaves the XMP beyond this
XMP_CHUNKS = ("XML:com.adobe.xmp", "xmp")  # PNG iTXt, then what Pillow reads from JPEG / WebP
XMP_RECIPE = "labkit:recipe"  # the XMP element holding labkit's JSON, and its name among an image's chunks
EXIF_IFD, USER_COMMENT, MAKER_NOTE, EXIF_SOFTWARE = 0x8769, 0x9286, 0x927C, 0x0131
COMMENT_CODES = {b"UNICODE\0": "utf-16", b"ASCII\0\0\0": "ascii", b"JIS\0\0\0\0\0": "shift_jis",
                 b"\0" * 8: "utf-8"}  # EXIF UserComment's 8-byte character code


def software() -> str:
    """What labkit writes as the file's Software / CreatorTool and as infotext's Version: "labkit x.y.z"."""
    from ..version import __version__

    return f"labkit {__version__}"


# ---- writing -----------------------------------------------------------------------------------------------------
def image_format(path) -> str:
    """Pillow's format name for a file name; BadInput for extensions labkit does not write."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise BadInput(f"{Path(path).name}: labkit writes recipes into {', '.join(FORMATS)} files; "
                       f"use one of those extensions.")
    return FORMATS[suffix]


def xmp_packet(recipe_json: str | None = None) -> str:
    """An XMP packet marking the file as made by a trained model (IPTC DigitalSourceType), naming labkit, and
    optionally carrying labkit's recipe JSON."""
    recipe = f"<{XMP_RECIPE}>{escape(recipe_json)}</{XMP_RECIPE}>" if recipe_json else ""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        '    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"\n'
        f'    xmlns:labkit="{LABKIT_NS}"\n'
        f"    xmp:CreatorTool={quoteattr(software())}\n"
        f'    Iptc4xmpExt:DigitalSourceType="{AI_SOURCE_TYPE}">{recipe}</rdf:Description>\n'
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )


def encode_user_comment(text: str) -> bytes:
    """EXIF UserComment as A1111 writes it (piexif's "unicode" encoding): b"UNICODE\\0" + UTF-16 big-endian."""
    return b"UNICODE\0" + text.encode("utf-16-be")


def png_options(text: str, recipe_json: str, chunks: dict | None = None) -> dict:
    """Pillow's PNG options writing infotext `parameters`, the `labkit` JSON, Software, the XMP marker, then any
    other text `chunks` ({name: text})."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", text)  # Pillow switches to iTXt when the text is not Latin-1, as A1111's files do
    info.add_text("labkit", recipe_json)
    info.add_text("Software", software())
    info.add_itxt("XML:com.adobe.xmp", xmp_packet(), zip=False)
    for name, value in (chunks or {}).items():
        info.add_text(name, value)
    return {"pnginfo": info}


def exif_options(text: str, recipe_json: str) -> dict:
    """Pillow's JPEG / WebP options: infotext in EXIF UserComment, Software, the recipe inside the XMP marker."""
    from PIL import Image

    exif = Image.Exif()
    exif[EXIF_SOFTWARE] = software()
    exif.get_ifd(EXIF_IFD)[USER_COMMENT] = encode_user_comment(text)
    xmp = xmp_packet(recipe_json).encode()
    if len(xmp) > XMP_LIMIT:  # a huge prompt: keep the marker, the infotext still carries the recipe
        xmp = xmp_packet().encode()
    return {"exif": exif, "xmp": xmp}


def image_options(fmt: str, text: str, recipe_json: str, chunks: dict | None = None) -> dict:
    """Everything Pillow's `save(format=fmt, ...)` needs to write a recipe: encoder settings and metadata.
    `chunks`: more PNG text chunks ({name: text}); BadInput for other formats, which have no place for them."""
    if fmt == "PNG":
        return {**ENCODER_OPTIONS[fmt], **png_options(text, recipe_json, chunks)}
    if chunks:
        raise BadInput(f"Text chunks ({', '.join(chunks)}) exist only in PNG files; save as .png.")
    return {**ENCODER_OPTIONS[fmt], **exif_options(text, recipe_json)}


# ---- reading -----------------------------------------------------------------------------------------------------
def _utf16_order(body: bytes) -> str:
    """UTF-16 byte order of a UserComment: a BOM, else where ASCII's zero bytes fall (piexif and A1111: BE)."""
    if body[:2] in (b"\xfe\xff", b"\xff\xfe"):
        return "utf-16"
    return "utf-16-be" if body[0::2].count(0) >= body[1::2].count(0) else "utf-16-le"


def decode_user_comment(raw) -> str:
    """Text of an EXIF UserComment (bytes with an 8-byte character code, or text as some writers leave it)."""
    if isinstance(raw, str):
        return raw.strip("\0")
    raw = bytes(raw)
    code, body = COMMENT_CODES.get(raw[:8]), raw[8:]
    if code is None:
        code, body = "utf-8", raw
    if code == "utf-16":
        code = _utf16_order(body)
    return body.decode(code, errors="replace").rstrip("\0")


def xmp_recipe(xmp: str) -> str | None:
    """labkit's recipe JSON inside an XMP packet, or None."""
    match = re.search(rf"<{XMP_RECIPE}>(.*?)</{XMP_RECIPE}>", xmp or "", re.S)
    return unescape(match.group(1)) if match else None


def with_xmp_recipe(chunks: dict) -> dict:
    """`chunks` plus labkit's recipe from their XMP packet as its own entry (XMP_RECIPE), when there is one."""
    xmp = next((chunks[name] for name in XMP_CHUNKS if chunks.get(name)), "")
    recipe = xmp_recipe(xmp)
    return {**chunks, XMP_RECIPE: recipe} if recipe else chunks


def image_chunks(image) -> dict:
    """{name: text} of everything in a PIL image's metadata that may hold a recipe."""
    info = dict(image.info)
    info.update(getattr(image, "text", None) or {})  # PNG: text chunks after the pixel data too
    chunks = {key: value for key, value in info.items() if isinstance(key, str) and isinstance(value, str)}
    if isinstance(info.get("xmp"), bytes):
        chunks["xmp"] = info["xmp"].decode("utf-8", errors="replace")
    exif = image.getexif()
    comment = exif.get_ifd(EXIF_IFD).get(USER_COMMENT) or exif.get(USER_COMMENT)
    if comment:
        chunks["UserComment"] = decode_user_comment(comment)
    if exif.get(MAKER_NOTE):
        chunks["MakerNote"] = decode_user_comment(exif[MAKER_NOTE])
    return chunks


def read_image_chunks(opener, where: str) -> dict:
    """image_chunks of the image `opener()` opens; UnsupportedFile for anything that is not a readable image."""
    try:
        with opener() as image:
            return image_chunks(image)
    except LabkitError:
        raise
    except Exception as error:  # Pillow signals damaged or foreign files with many exception types
        why = str(error).split(" <_io.")[0]  # Pillow names the in-memory file object: no help to anyone
        raise UnsupportedFile(f"{where} is not an image labkit can read ({why}): give a PNG, JPEG or WebP picture "
                              f"(read_recipe also takes infotext or JSON as text).") from None
