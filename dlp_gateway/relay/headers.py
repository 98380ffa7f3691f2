"""Moved to ``dlp_gateway.mail.headers`` (a low-floor module); kept for old imports."""

from dlp_gateway.mail.headers import (  # noqa: F401
    decoded_subject,
    header_bytes,
    mask_numbers_in_text,
    prepend_headers,
    strip_dlp_headers,
)
