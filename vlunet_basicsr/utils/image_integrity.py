"""Is an encoded JPEG or PNG complete? OpenCV decodes some truncated files (a JPEG cut short comes out with
its missing rows grey), so completeness is checked on the file's own structure before decoding.

Rule: a JPEG (starts with FFD8) must reach its end-of-image marker (FFD9) when its segments are walked by
their lengths and its entropy-coded scans are skipped to the next marker; a PNG (starts with its 8-byte
signature) must reach its IEND chunk when its chunks are walked by their lengths. Bytes after FFD9 or IEND
(e.g. data a camera appends) are allowed. Other formats are left to the decoder.
"""
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
JPEG_START = b'\xff\xd8'
_JPEG_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8)])  # TEM and RST0-7 carry no length
_JPEG_EOI, _JPEG_SOS = 0xD9, 0xDA


def _skip_scan(data, pos):
    """Position of the first marker after the entropy-coded data starting at ``pos``; None when data ends first."""
    while True:
        pos = data.find(b'\xff', pos)
        if pos < 0 or pos + 1 >= len(data):
            return None
        following = data[pos + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:  # stuffed 0xFF byte or restart marker: still the scan
            pos += 2
        elif following == 0xFF:  # fill byte before a marker
            pos += 1
        else:
            return pos


def jpeg_problem(data):
    """'' when the JPEG ``data`` reaches its end-of-image marker, else what is wrong (see the module rule)."""
    truncated = 'the JPEG ends before its end-of-image marker (FFD9): the file is truncated or corrupt'
    pos = len(JPEG_START)
    while True:
        pos = data.find(b'\xff', pos)  # a marker (bytes before it would be extraneous; the decoder skips them)
        while 0 <= pos < len(data) and data[pos] == 0xFF:
            pos += 1
        if pos < 0 or pos >= len(data):
            return truncated
        marker = data[pos]
        pos += 1
        if marker == _JPEG_EOI:
            return ''
        if marker in _JPEG_STANDALONE:
            continue
        if pos + 2 > len(data):
            return truncated
        length = (data[pos] << 8) | data[pos + 1]
        if length < 2:
            return f'the JPEG segment FF{marker:02X} at byte {pos - 2} has an invalid length {length}: corrupt'
        pos += length
        if pos > len(data):
            return truncated
        if marker == _JPEG_SOS:
            pos = _skip_scan(data, pos)
            if pos is None:
                return truncated


def png_problem(data):
    """'' when the PNG ``data`` reaches its IEND chunk, else what is wrong (see the module rule)."""
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], 'big')
        chunk_type = bytes(data[pos + 4:pos + 8])
        end = pos + 12 + length  # length, type, data, CRC
        if end > len(data):
            return (f'the PNG chunk {chunk_type!r} at byte {pos} ends past the end of the file: the file is '
                    'truncated or corrupt')
        if chunk_type == b'IEND':
            return ''
        pos = end
    return 'the PNG ends before its IEND chunk: the file is truncated or corrupt'


def encoded_image_problem(data):
    """'' when ``data`` (bytes) looks complete, else why not: empty, or a JPEG/PNG that is cut short."""
    if not data:
        return 'the file is empty (0 bytes)'
    if data[:len(JPEG_START)] == JPEG_START:
        return jpeg_problem(data)
    if data[:len(PNG_SIGNATURE)] == PNG_SIGNATURE:
        return png_problem(data)
    return ''
